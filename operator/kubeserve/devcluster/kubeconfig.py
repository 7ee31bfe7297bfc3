"""Kubeconfig documents with embedded certificates (pure: dict in, YAML out)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from kubeserve.devcluster.certs import KeyPair

CLUSTER_NAME = "kubeserve-dev"


def _b64(data: bytes) -> str:
    """Return base64 text of ``data``."""
    return base64.b64encode(data).decode()


def kubeconfig(server: str, ca_pem: bytes, client: KeyPair, user: str) -> dict[str, Any]:
    """Return a kubeconfig for ``user`` authenticating with a client certificate."""
    context = f"{user}@{CLUSTER_NAME}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": context,
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write a kubeconfig readable only by its owner; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
