"""schemathesis fuzzes the runtime's own OpenAPI description against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kubeserve_runtime.testing import RuntimeProcess

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def test_openapi_is_served(sklearn_server: RuntimeProcess) -> None:
    """/openapi.json and /v2/openapi.json describe every route."""
    doc = httpx.get(f"{sklearn_server.url}/openapi.json").json()
    assert doc == httpx.get(f"{sklearn_server.url}/v2/openapi.json").json()
    assert {
        "/v2/models/{name}/infer",
        "/v1/models/{name}:predict",
        "/v2/health/ready",
        "/v2/models/{name}/feedback",
    } <= set(doc["paths"])


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(
    sklearn_server: RuntimeProcess, tmp_path: Path
) -> None:
    """Generated and mutated requests never get a 5xx or an undocumented response."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{sklearn_server.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "20",
            "--seed",
            "20240601",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # schemathesis writes its cache into the working directory
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
