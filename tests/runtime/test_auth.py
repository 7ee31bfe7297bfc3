"""Bearer-token auth and sampled JSON logs on a real server (REST and gRPC), and token
files that change under a running server: reloads revoke, emptied or deleted files
refuse everyone (fail closed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed
from tritonclient.utils import InferenceServerException

from kubeserve_runtime.auth import TokenAuth, parse_tokens
from kubeserve_runtime.errors import Unauthorized
from kubeserve_runtime.testing import RuntimeProcess

ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def auth_server(
    sklearn_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    """The iris model behind two tokens, logging no successful request (sample rate 0)."""
    tokens = tmp_path_factory.mktemp("auth") / "tokens"
    tokens.write_text("# rotated weekly\ns3cret\n\n  # indented comment\nother-token\n")
    args = ("--auth-token-file", str(tokens), "--log-sample-rate", "0")
    with RuntimeProcess(sklearn_dir, "iris", *args) as server:
        yield server


def test_rest_needs_a_token_but_health_is_open(auth_server: RuntimeProcess) -> None:
    """No or wrong token -> 401 with a reason; right tokens work; probes need none."""
    url = f"{auth_server.url}/v2/models/iris/infer"
    assert httpx.get(f"{auth_server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{auth_server.url}/v2/health/ready").status_code == 200
    missing = httpx.post(url, json=ROW)
    assert missing.status_code == 401
    assert "missing bearer token" in missing.json()["error"]
    wrong = httpx.post(url, json=ROW, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid bearer token"}
    basic = httpx.post(url, json=ROW, headers={"Authorization": "Basic czNjcmV0"})
    assert basic.status_code == 401
    for token in ("s3cret", "other-token"):
        ok = httpx.post(url, json=ROW, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    v1 = httpx.get(f"{auth_server.url}/v1/models/iris")
    assert v1.status_code == 401
    comment = httpx.post(url, json=ROW, headers={"Authorization": "Bearer # indented comment"})
    assert comment.status_code == 401


def test_grpc_needs_a_token_but_liveness_is_open(auth_server: RuntimeProcess) -> None:
    """gRPC: UNAUTHENTICATED without the token, served with it; ServerLive stays open."""
    client = grpcclient.InferenceServerClient(url=auth_server.grpc_target)
    try:
        assert client.is_server_live()
        tensor = grpcclient.InferInput("x", [1, 4], "FP64")
        tensor.set_data_from_numpy(np.ones((1, 4)))
        with pytest.raises(InferenceServerException) as info:
            client.infer("iris", [tensor])
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        result = client.infer("iris", [tensor], headers={"authorization": "Bearer s3cret"})
        assert result.as_numpy("output-0") is not None
    finally:
        client.close()


def test_logs_are_json_and_sampled(auth_server: RuntimeProcess) -> None:
    """With sample rate 0, errors are still logged as JSON lines; successes are not."""
    marker = "/v2/models/iris/versions/logcheck/infer"
    httpx.post(f"{auth_server.url}{marker}", json=ROW, headers={"Authorization": "Bearer s3cret"})
    httpx.post(
        f"{auth_server.url}/v2/models/iris/infer",
        json=ROW,
        headers={"Authorization": "Bearer s3cret"},
    )
    lines = [json.loads(line) for line in auth_server.log.splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("logger") == "kubeserve_runtime.access"]
    assert any(e.get("path") == marker and e["status"] == 404 for e in access)
    assert any(e["status"] == 401 for e in access)
    assert all(e["status"] >= 400 for e in access)
    assert not [e for e in lines if e.get("logger") == "kubeserve_runtime.prediction"]


def test_token_file_parsing_skips_indented_comments() -> None:
    """A comment stays a comment with leading blanks; tokens are stripped."""
    text = "# header\n  # indented\n\t# tabbed\n  tok-1  \n\n tok#2\n"
    assert parse_tokens(text) == (b"tok-1", b"tok#2")


def _status(server: RuntimeProcess, token: str) -> int:
    """The status of one authenticated V2 infer request."""
    url = f"{server.url}/v2/models/iris/infer"
    return httpx.post(url, json=ROW, headers={"Authorization": f"Bearer {token}"}).status_code


def _until(server: RuntimeProcess, token: str, status: int) -> None:
    """Poll (the reload is checked at most every few seconds) until token gets status."""
    last = Retrying(
        stop=stop_after_delay(60),
        wait=wait_fixed(0.2),
        retry=retry_if_result(lambda got: got != status),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )(_status, server, token)
    assert last == status, f"{token!r} still gets {last} after 60 s"


def test_reload_revokes_and_missing_or_empty_files_fail_closed(
    sklearn_dir: Path, tmp_path: Path
) -> None:
    """Rotation revokes the old token; an emptied or deleted file refuses every token
    (REST and gRPC), the deletion is logged as an error, and a restored file works again."""
    tokens = tmp_path / "tokens"
    tokens.write_text("old-token\n")
    with RuntimeProcess(sklearn_dir, "iris", "--auth-token-file", str(tokens)) as server:
        assert _status(server, "old-token") == 200
        tokens.write_text("new-token\n")
        _until(server, "old-token", 401)
        assert _status(server, "new-token") == 200

        tokens.write_text("")
        _until(server, "new-token", 401)
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200

        tokens.write_text("new-token\n")
        _until(server, "new-token", 200)
        tokens.unlink()
        _until(server, "new-token", 401)
        client = grpcclient.InferenceServerClient(url=server.grpc_target)
        try:
            with pytest.raises(InferenceServerException) as info:
                client.get_model_metadata("iris", headers={"authorization": "Bearer new-token"})
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        finally:
            client.close()
        lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
        errors = [e for e in lines if e["logger"] == "kubeserve_runtime.auth"]
        assert [e["level"] for e in errors] == ["info", "error", "info", "error"]
        assert "holds no tokens" in errors[1]["msg"]
        assert "cannot be read" in errors[3]["msg"]
        assert "every request is refused" in errors[3]["msg"]

        tokens.write_text("# back\nnew-token\n")
        _until(server, "new-token", 200)


def test_missing_file_is_logged_once_not_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that stays missing is reported when it disappears, not on every check."""
    tokens = tmp_path / "tokens"
    tokens.write_text("t\n")
    auth = TokenAuth(tokens, recheck_seconds=0)
    auth.check("Bearer t")
    tokens.unlink()
    with caplog.at_level(logging.INFO, logger="kubeserve_runtime.auth"):
        for _ in range(3):
            with pytest.raises(Unauthorized, match="invalid bearer token"):
                auth.check("Bearer t")
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert "No such file or directory" in caplog.records[0].getMessage()


def test_token_file_refusals_are_audited_and_counted(auth_server: RuntimeProcess) -> None:
    """Tokens mode: every 401 writes an audit line (even at sample rate 0) with the reason
    and the client, never the token, and counts in kubeserve_auth_refused_total."""

    def refused(reason: str) -> float:
        text = httpx.get(auth_server.metrics_url).text
        prefix = "kubeserve_auth_refused_total{"
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(prefix) and f'reason="{reason}"' in line
        )

    before = {reason: refused(reason) for reason in ("missing", "invalid", "malformed")}
    url = f"{auth_server.url}/v2/models/iris/infer"
    httpx.post(url, json=ROW)
    httpx.post(url, json=ROW, headers={"Authorization": "Bearer guessed-token-1234"})
    httpx.get(f"{auth_server.url}/v2", headers={"Authorization": "Basic czNjcmV0"})
    for reason in before:
        assert refused(reason) == before[reason] + 1, reason
    lines = [json.loads(line) for line in auth_server.log.splitlines() if line.startswith("{")]
    audit = [e for e in lines if e["logger"] == "kubeserve_runtime.audit"]
    assert {"missing", "invalid", "malformed"} <= {e["reason"] for e in audit}
    basic = [e for e in audit if e["reason"] == "malformed"][-1]
    assert (basic["status"], basic["target"], basic["client"]) == (401, "GET /v2", "127.0.0.1")
    assert basic["subject"] is None
    assert "guessed-token-1234" not in auth_server.log
