"""Options shared by every storage backend, read once from the environment.

Credentials and endpoints come from the process environment and, for values not set
there, from a mounted Kubernetes Secret directory (``KUBESERVE_STORAGE_SECRET_DIR``),
where each file name is a variable name (``AWS_ACCESS_KEY_ID``...) and its content the
value. Environment variables win over Secret files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubeserve_runtime import contract
from kubeserve_runtime.storage.quota import DEFAULT_MAX_MODEL_BYTES, max_model_bytes

SECRET_DIR_ENV = contract.ENV_STORAGE_SECRET_DIR
PVC_ROOT_ENV = contract.ENV_PVC_ROOT
DEFAULT_PVC_ROOT = Path(contract.PVC_ROOT)


@dataclass(frozen=True)
class DownloadOptions:
    """How to download: link instead of copy for local sources, where PVCs are mounted,
    the model size limit, and the configuration values (environment merged with Secret
    files)."""

    link: bool = False
    pvc_root: Path = DEFAULT_PVC_ROOT
    config: Mapping[str, str] = field(default_factory=dict)
    max_bytes: int = DEFAULT_MAX_MODEL_BYTES

    @classmethod
    def from_environment(
        cls,
        *,
        link: bool = False,
        pvc_root: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> DownloadOptions:
        """Build options from the environment and the optional Secret directory; a
        KUBESERVE_MAX_MODEL_BYTES that is not a positive integer raises ValueError."""
        env = dict(os.environ if environ is None else environ)
        secret_dir = env.get(SECRET_DIR_ENV)
        config = {**read_secret_dir(Path(secret_dir)), **env} if secret_dir else env
        root = pvc_root or Path(config.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT)
        return cls(link=link, pvc_root=root, config=config, max_bytes=max_model_bytes(config))

    def get(self, *names: str) -> str | None:
        """Return the first non-empty value among names."""
        for name in names:
            value = self.config.get(name)
            if value:
                return value
        return None

    def flag(self, name: str) -> bool:
        """Return a boolean configuration value (true/1/yes/on)."""
        return (self.config.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def read_secret_dir(directory: Path) -> dict[str, str]:
    """Read a mounted Secret: one file per key, values stripped of trailing newlines."""
    if not directory.is_dir():
        return {}
    values: dict[str, str] = {}
    for entry in sorted(directory.iterdir()):
        # Kubernetes projects keys as symlinks into a ..data directory; skip the dot entries.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        values[entry.name] = entry.read_text(encoding="utf-8").strip()
    return values
