"""The pod's settings as a local process's: the runtime's environment and the storage
initializer's command line, taken from the rendered containers.

Limits: only literal env values travel (``valueFrom`` needs the cluster); the model
folder, the three ports, the bind address, the token file and the feedback key file are
the only values replaced; the caller's ``KUBESERVE_*`` variables are dropped so they
cannot change the pod's settings. ``pvc://`` cannot be reached outside the cluster and is refused.
URIs in messages are redacted (userinfo, query, secret fragments), as the storage
initializer's own messages are.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from kubeserve.local.errors import LocalError
from kubeserve.local.ports import Ports
from kubeserve.local.predictors import Predictor
from kubeserve_runtime import contract
from kubeserve_runtime.storage.redaction import redact_uri

PORT_VARS = (contract.ENV_HTTP_PORT, contract.ENV_GRPC_PORT, contract.ENV_METRICS_PORT)
TLS_VARS = (contract.ENV_TLS_CERT_FILE, contract.ENV_TLS_KEY_FILE, contract.ENV_TLS_CLIENT_CA_FILE)
"""Left out locally: they name files mounted in the pod; local serves clear text on loopback."""


def runtime_env(
    predictor: Predictor,
    model_dir: Path,
    ports: Ports,
    host: str,
    auth_token_file: Path | None,
    base: Mapping[str, str],
    feedback_key_file: Path | None = None,
) -> dict[str, str]:
    """The process environment: the caller's without KUBESERVE_*, plus the pod's settings."""
    env = {k: v for k, v in base.items() if not k.startswith(contract.ENV_PREFIX)}
    env.update((k, v) for k, v in predictor.env.items() if k not in TLS_VARS)
    env[contract.ENV_MODEL_DIR] = str(model_dir)
    for var, port in zip(PORT_VARS, (ports.http, ports.grpc, ports.metrics), strict=True):
        env[var] = str(port)
    env[contract.ENV_HOST] = host
    if predictor.env.get(contract.ENV_AUTH_MODE) == "serviceAccount":
        raise LocalError(
            "this InferenceService accepts Kubernetes ServiceAccount tokens (spec.auth mode "
            "serviceAccount), which only a pod in the cluster can verify; run it locally "
            "without spec.auth, or with mode tokens or oidc"
        )
    if contract.ENV_AUTH_TOKEN_FILE in predictor.env:
        if auth_token_file is None:
            raise LocalError(
                "this InferenceService requires bearer tokens (spec.auth); pass "
                "--auth-token-file FILE (one token per line, like the Secret's `tokens` key)"
            )
        env[contract.ENV_AUTH_TOKEN_FILE] = str(auth_token_file)
    if contract.ENV_FEEDBACK_KEY_FILE in predictor.env:
        if feedback_key_file is None:
            raise LocalError(
                "this InferenceService issues feedback tokens (spec.feedback); pass "
                "--feedback-key-file FILE (the Secret's `key`: one key of at least 32 bytes "
                "per line)"
            )
        env[contract.ENV_FEEDBACK_KEY_FILE] = str(feedback_key_file)
    return env


def download_argv(predictor: Predictor, uri: str, dest: Path) -> list[str]:
    """The storage initializer's command with the local URI and destination."""
    if urlsplit(uri).scheme == "pvc":
        raise LocalError(
            f"{predictor.component}: {redact_uri(uri)} is a PersistentVolumeClaim, not "
            "reachable outside the cluster; pass --model-dir or --model-uri file://..."
        )
    args = [a for a in predictor.download_args if a != contract.LINK_FLAG]
    args[1], args[2] = uri, str(dest)
    return [sys.executable, "-m", "kubeserve_runtime.cli", *args]
