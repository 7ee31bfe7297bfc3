"""`kubeserve local`'s predictors and settings: the pod's settings become the local
process's settings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.config import OperatorConfig
from kubeserve.local import predictors, settings
from kubeserve.local.errors import LocalError
from kubeserve.local.ports import Ports
from kubeserve.render import render_object

INPUTS = Path(__file__).resolve().parent / "golden" / "inputs"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def read(name: str) -> dict[str, Any]:
    """A golden input InferenceService."""
    obj: dict[str, Any] = yaml.safe_load((INPUTS / name).read_text())
    return obj


def pod_env(obj: dict[str, Any]) -> dict[str, str]:
    """The runtime container's literal env in the rendered Deployment of the main predictor."""
    import datetime as dt

    children = render_object(obj, OperatorConfig(), dt.datetime.now(dt.UTC))
    (deployment,) = [c for c in children if c["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_local_env_is_the_pods_env_with_only_paths_and_ports_replaced(tmp_path: Path) -> None:
    """Batcher, inputSchema, user env and model name come from the builders unchanged."""
    obj = read("fraud.yaml")
    (predictor,) = predictors.predictors(obj)
    tokens = tmp_path / "tokens"
    env = settings.runtime_env(
        predictor,
        tmp_path,
        Ports(9000, 9001, 9002),
        "127.0.0.1",
        tokens,
        {"PATH": "/bin", "KUBESERVE_MAX_BATCH_SIZE": "999"},
    )
    replaced = {
        "KUBESERVE_MODEL_DIR": str(tmp_path),
        "KUBESERVE_HTTP_PORT": "9000",
        "KUBESERVE_GRPC_PORT": "9001",
        "KUBESERVE_METRICS_PORT": "9002",
        "KUBESERVE_AUTH_TOKEN_FILE": str(tokens),
        "KUBESERVE_HOST": "127.0.0.1",
    }
    assert env == {"PATH": "/bin", **pod_env(obj), **replaced}
    assert env["KUBESERVE_MODEL_NAME"] == "fraud-detector"
    assert env["KUBESERVE_MAX_BATCH_SIZE"] == "16"
    assert predictor.serve_args == ("serve",)


def test_auth_without_a_token_file_is_refused() -> None:
    """spec.auth needs --auth-token-file locally: the message says so."""
    (predictor,) = predictors.predictors(read("fraud.yaml"))
    with pytest.raises(LocalError, match="--auth-token-file"):
        settings.runtime_env(predictor, Path("/m"), Ports(1, 2, 3), "127.0.0.1", None, {})


def test_feedback_key_file_replaces_the_secret_mount() -> None:
    """spec.feedback needs --feedback-key-file locally; given, it replaces the pod's path."""
    obj = read("iris.yaml")
    obj["spec"]["feedback"] = {"secretRef": {"name": "iris-feedback"}}
    (main,) = predictors.predictors(obj)
    with pytest.raises(LocalError, match="--feedback-key-file"):
        settings.runtime_env(main, Path("/m"), Ports(1, 2, 3), "127.0.0.1", None, {})
    key = Path("/keys/feedback")
    env = settings.runtime_env(main, Path("/m"), Ports(1, 2, 3), "127.0.0.1", None, {}, key)
    assert env["KUBESERVE_FEEDBACK_KEY_FILE"] == str(key)
    assert env["KUBESERVE_COMPONENT"] == main.component


def test_download_uses_the_initializer_arguments_with_the_local_uri() -> None:
    """Same `download URI DIR` command as the init container; pvc:// is refused."""
    (predictor,) = predictors.predictors(read("iris.yaml"))
    assert predictor.download_args == ("download", "s3://models/iris/v1", "/mnt/models")
    argv = settings.download_argv(predictor, "file:///tmp/m", Path("/tmp/out"))
    assert argv == [
        sys.executable,
        "-m",
        "kubeserve_runtime.cli",
        "download",
        "file:///tmp/m",
        "/tmp/out",
    ]
    with pytest.raises(LocalError, match="PersistentVolumeClaim") as refused:
        settings.download_argv(predictor, "pvc://claim/x?token=s3cret", Path("/tmp/out"))
    assert "pvc://claim/x?REDACTED is a PersistentVolumeClaim" in str(refused.value)


def test_variants_are_ordered_and_described_as_the_cluster_routes_them() -> None:
    """Main predictor first, then variants in spec order, each with its share."""
    example = EXAMPLES / "05-ab-header" / "isvc.yaml"
    found = predictors.predictors(yaml.safe_load(example.read_text()))
    assert [p.component for p in found] == ["predictor", "b"]
    assert found[0].routing == "80% of traffic"
    assert found[1].routing == "20% of traffic, requests with header x-model-variant: b"


def test_custom_containers_cannot_run_locally() -> None:
    """A predictor with its own image is refused with the reason."""
    with pytest.raises(LocalError, match="its own container image"):
        predictors.predictors(read("full.yaml"))


def test_overrides_name_a_component_or_default_to_the_main_predictor() -> None:
    """`b=URI` targets variant b; a bare value the main predictor; duplicates refused."""
    known = ["predictor", "b"]
    assert predictors.parse_overrides(["file:///a", "b=file:///b"], "--model-uri", known) == {
        "predictor": "file:///a",
        "b": "file:///b",
    }
    assert predictors.parse_overrides(["s3://x/y?a=b"], "--model-uri", known) == {
        "predictor": "s3://x/y?a=b"
    }
    with pytest.raises(LocalError, match="given twice"):
        predictors.parse_overrides(["/a", "/b"], "--model-dir", known)
