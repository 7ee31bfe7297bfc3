"""Process lifecycle: graceful SIGTERM under load, and refusing bad settings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kubeserve_runtime.testing import RuntimeProcess

HANDLER = textwrap.dedent(
    """
    import time

    class Handler:
        def predict(self, feed):
            time.sleep(0.4)
            return feed["x"] * 2
    """
)


@pytest.mark.slow
def test_sigterm_under_load_loses_no_accepted_request(tmp_path: Path) -> None:
    """Requests accepted before SIGTERM all complete; readiness goes false; exit 0."""
    (tmp_path / "handler.py").write_text(HANDLER)
    env = {"KUBESERVE_SHUTDOWN_DELAY_SECONDS": "0.5", "KUBESERVE_INFERENCE_THREADS": "2"}
    server = RuntimeProcess(tmp_path, "slow", env=env).start()
    try:
        url = f"{server.url}/v2/models/slow/infer"

        def call(i: int) -> httpx.Response:
            body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [i]}]}
            return httpx.post(url, json=body, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(8)]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                scrape = httpx.get(server.metrics_url).text
                if (
                    'kubeserve_inflight_requests{model="slow",protocol="v2",version=""} 8.0'
                    in scrape
                ):
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the 8 requests never were in flight together")
            server.signal()
            time.sleep(0.1)
            assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
            assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 8
        assert [r.json()["outputs"][0]["data"] for r in responses] == [[2 * i] for i in range(8)]
        assert server.process is not None
        assert server.process.wait(30) == 0
        events = [json.loads(x) for x in server.log.splitlines() if x.startswith("{")]
        assert any(e["msg"] == "stopped" and e.get("exit_status") == 0 for e in events)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v2/health/live")
    finally:
        server.close()


def test_bad_settings_exit_2_with_reason(tmp_path: Path) -> None:
    """A missing model name or a malformed inputSchema is refused before serving."""
    base = [sys.executable, "-m", "kubeserve_runtime.cli", "serve", "--model-dir", str(tmp_path)]
    missing = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert "model_name" in missing.stderr
    schema = subprocess.run(
        [*base, "--model-name", "m", "--input-schema", "{not json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert schema.returncode == 2
    assert "inputSchema is not valid JSON" in schema.stderr


def test_unloadable_model_exits_1_with_reason(tmp_path: Path) -> None:
    """A directory with no model logs why and exits 1 (the pod restarts, visibly)."""
    (tmp_path / "notes.txt.bak").write_text("nothing to serve")
    server = RuntimeProcess(tmp_path, "m", grpc=False).start(wait_ready=False)
    try:
        assert server.process is not None
        assert server.process.wait(60) == 1
        assert "cannot tell the model format" in server.log
    finally:
        server.close()


def test_env_is_overridden_by_flags(tmp_path: Path) -> None:
    """Settings come from KUBESERVE_* env; a flag of the same meaning wins."""
    from kubeserve_runtime.settings import RuntimeSettings

    env = {"KUBESERVE_MODEL_NAME": "from-env", "KUBESERVE_HTTP_PORT": "9000"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = RuntimeSettings()
        assert (settings.model_name, settings.http_port) == ("from-env", 9000)
        assert RuntimeSettings(http_port=9100).http_port == 9100


def test_freeze_heap_hides_long_lived_objects_from_the_collector() -> None:
    """After loading, every object alive is frozen: full collections no longer scan it."""
    import gc

    from kubeserve_runtime.server import freeze_heap

    survivor = [object() for _ in range(1000)]
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(survivor)
    finally:
        gc.unfreeze()
