"""``kubeserve local`` as a user runs it: a real subprocess, a real model, real requests.

The iris example's model is trained by the example's own make_model.py into a temporary
folder and handed over as a ``file://`` URI, so the storage-initializer path (download)
runs too. Ports are free ones (``--port 0``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubeserve.local.harness import LocalProcess
from kubeserve.local.ports import free_port
from kubeserve.rollout.revision import revision_hash
from kubeserve_runtime.testing import wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris example's model, made by its make_model.py."""
    out = tmp_path_factory.mktemp("iris") / "model"
    script = EXAMPLES / "01-sklearn-iris" / "make_model.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    return out


@pytest.fixture
def local_iris(iris_model: Path) -> Iterator[LocalProcess]:
    """`kubeserve local` on the iris example, fed the model through a file:// URI."""
    proc = LocalProcess(
        "-f",
        str(EXAMPLES / "01-sklearn-iris" / "isvc.yaml"),
        "--model-uri",
        iris_model.as_uri(),
        "--port",
        "0",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.slow
def test_local_serves_the_iris_example_over_v1_and_v2(local_iris: LocalProcess) -> None:
    """Both protocols answer with real predictions; the version is the operator's revision."""
    url = local_iris.urls(1)["predictor"]
    with httpx.Client(base_url=url, timeout=10) as client:
        v1 = client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert v1.status_code == 200, v1.text
        assert v1.json() == {"predictions": [0]}
        v2 = client.post(
            "/v2/models/iris/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [1, 4],
                        "datatype": "FP64",
                        "data": [6.7, 3.0, 5.2, 2.3],
                    }
                ]
            },
        )
        assert v2.status_code == 200, v2.text
        body = v2.json()
    assert body["outputs"][0]["data"] == [2]
    isvc = yaml.safe_load((EXAMPLES / "01-sklearn-iris" / "isvc.yaml").read_text())
    assert body["model_version"] == revision_hash(isvc["spec"]["predictor"])
    assert local_iris.stop() == 0
    output = "\n".join(local_iris.output)
    assert f"curl -s {url}/v1/models/iris:predict" in output
    assert output.endswith("kubeserve local: stopped")


@pytest.mark.slow
def test_local_runs_each_ab_variant_as_its_own_process(tmp_path: Path) -> None:
    """Example 05: the main predictor and variant b serve their own models side by side."""
    out = tmp_path / "model"
    script = EXAMPLES / "05-ab-header" / "make_model.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    proc = LocalProcess(
        "-f",
        str(EXAMPLES / "05-ab-header" / "isvc.yaml"),
        "--model-dir",
        str(out / "a"),
        "--model-dir",
        f"b={out / 'b'}",
        "--port",
        "0",
    )
    try:
        urls = proc.urls(2)
        spec = yaml.safe_load((EXAMPLES / "05-ab-header" / "isvc.yaml").read_text())["spec"]
        expected = {
            "predictor": revision_hash(spec["predictor"]),
            "b": revision_hash(spec["variants"][0]["predictor"]),
        }
        for component, revision in expected.items():
            reply = httpx.post(
                f"{urls[component]}/v2/models/iris-ab/infer",
                json={
                    "inputs": [
                        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}
                    ]
                },
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["model_version"] == revision
    finally:
        assert proc.stop() == 0


def test_local_refuses_an_invalid_file_with_the_reason(tmp_path: Path) -> None:
    """A spec the API server would refuse is refused here too, naming the field."""
    bad = tmp_path / "bad.yaml"
    text = (EXAMPLES / "01-sklearn-iris" / "isvc.yaml").read_text()
    bad.write_text(text.replace("minReplicas: 1", "minReplicas: 5"))
    result = subprocess.run(
        [sys.executable, "-m", "kubeserve.cli", "local", "-f", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "kubeserve local: error:" in result.stderr
    assert "minReplicas" in result.stderr


def test_local_never_prints_the_credentials_of_a_model_uri(tmp_path: Path) -> None:
    """userinfo and a presigned query are redacted in the progress line and in the
    download error (nothing listens on the port, so the download fails)."""
    uri = f"https://user:s3cret@127.0.0.1:{free_port()}/model.joblib?X-Amz-Signature=s3cret"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeserve.cli",
            "local",
            "-f",
            str(EXAMPLES / "01-sklearn-iris" / "isvc.yaml"),
            "--model-uri",
            uri,
            "--port",
            "0",
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "downloading https://REDACTED@127.0.0.1:" in result.stdout
    assert "/model.joblib?REDACTED -> " in result.stdout
    assert "kubeserve local: error: predictor: download failed:" in result.stderr


@pytest.mark.slow
def test_local_runs_the_feedback_example_with_tokens_truths_and_payload_logs(
    tmp_path: Path,
) -> None:
    """Example 07: an answer's feedback token scores its truth (accepted once, a repeat is
    409), and each request and its response are on record as payload-log lines (stdout
    sink) carrying the request's id."""
    out = tmp_path / "model"
    script = EXAMPLES / "07-feedback" / "make_model.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    key = tmp_path / "key"
    key.write_text("k" * 40 + "\n")
    work = tmp_path / "work"
    proc = LocalProcess(
        "-f",
        str(EXAMPLES / "07-feedback" / "isvc.yaml"),
        "--model-dir",
        str(out / "v1"),
        "--feedback-key-file",
        str(key),
        "--work-dir",
        str(work),
        "--port",
        "0",
    )
    try:
        url = proc.urls(1)["predictor"]
        with httpx.Client(base_url=url, timeout=10) as client:
            answer = client.post(
                "/v1/models/iris-feedback:predict",
                json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
            )
            assert answer.status_code == 200, answer.text
            token = answer.headers["kubeserve-feedback-token"]
            truth = {"token": token, "truth": answer.json()["predictions"]}
            sent = client.post("/v2/models/iris-feedback/feedback", json=truth)
            assert sent.status_code == 200, sent.text
            again = client.post("/v2/models/iris-feedback/feedback", json=truth)
            assert again.status_code == 409, again.text
            row = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}
            v2 = client.post("/v2/models/iris-feedback/infer", json={"id": "fb-2", "inputs": [row]})
            assert v2.status_code == 200, v2.text

        def payload_events() -> list[dict[str, Any]]:
            lines = []
            for log in work.glob("*.log"):
                for line in log.read_text().splitlines():
                    if line.startswith("{"):
                        entry = json.loads(line)
                        if entry.get("logger") == "kubeserve_runtime.payload":
                            lines.append(entry["event"])
            return lines if len(lines) >= 4 else []

        events = wait_until(payload_events, "two requests' and responses' payload lines")
        kinds = [(e["id"] == "fb-2", e["type"].rsplit(".", 1)[1]) for e in events]
        assert sorted(kinds) == [
            (False, "request"),
            (False, "response"),
            (True, "request"),
            (True, "response"),
        ]
    finally:
        assert proc.stop() == 0
