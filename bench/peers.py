"""The peers kubeserve is measured against, each in its own virtual environment.

``bench/.venvs/<peer>`` is created on first use (and whenever its pinned requirement
list changes) with the same scikit-learn, joblib and onnxruntime versions as the
kubeserve environment, so every server loads byte-identical model files with identical
libraries. Only the serving framework differs.

- kserve: KServe's ModelServer (PyPI ``kserve``) with a ``kserve.Model`` subclass that
  wraps the model the way KServe's sklearnserver does (``bench/peers/kserve_server.py``).
- mlserver: MLServer with ``mlserver-sklearn`` for scikit-learn; MLServer ships no ONNX
  runtime, so ONNX runs in a small custom ``MLModel`` (``bench/peers/mlserver_onnx.py``).
  uvloop is pinned below 0.22, without which MLServer 1.7.1's worker processes crash.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
PEER_CODE = BENCH / "peers"

KSERVE_VERSION = "0.21.0"
MLSERVER_VERSION = "1.7.1"


@dataclass(frozen=True)
class Peer:
    """A peer framework and the requirements of its environment."""

    name: str
    requirements: tuple[str, ...]

    @property
    def venv(self) -> Path:
        """The peer's virtual environment."""
        return VENVS / self.name

    @property
    def python(self) -> Path:
        """The peer's interpreter."""
        return self.venv / "bin" / "python"

    def bin(self, name: str) -> Path:
        """A console script of the peer's environment."""
        return self.venv / "bin" / name


def shared_libraries() -> tuple[str, ...]:
    """The model libraries pinned to the versions kubeserve's environment runs."""
    return tuple(f"{d}=={version(d)}" for d in ("scikit-learn", "joblib", "onnxruntime"))


def peers() -> dict[str, Peer]:
    """Every peer, keyed by name."""
    shared = shared_libraries()
    return {
        "kserve": Peer("kserve", (f"kserve=={KSERVE_VERSION}", *shared)),
        "mlserver": Peer(
            "mlserver",
            (
                f"mlserver=={MLSERVER_VERSION}",
                f"mlserver-sklearn=={MLSERVER_VERSION}",
                # MLServer 1.7.1's inference workers call asyncio.get_event_loop() in a fresh
                # process, which uvloop 0.22+ turns into an error: pin the last that works.
                "uvloop<0.22",
                *shared,
            ),
        ),
    }


def ensure_venv(peer: Peer, log: Path) -> None:
    """Create or refresh the peer's environment when its requirements changed."""
    stamp = peer.venv / ".requirements"
    wanted = "\n".join(peer.requirements) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted and peer.python.exists():
        return
    print(f"creating {peer.venv} ({', '.join(peer.requirements)}); log: {log}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(peer.venv)], check=True)
        subprocess.run(
            [
                str(peer.python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                *peer.requirements,
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stamp.write_text(wanted)


def installed_versions(peer: Peer) -> dict[str, str]:
    """Versions of the interesting packages inside the peer's environment."""
    names = [r.split("==")[0] for r in peer.requirements] + ["uvicorn", "fastapi", "numpy"]
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor n in sys.argv[1:]:\n    try: out[n] = version(n)\n"
        "    except PackageNotFoundError: pass\nprint(json.dumps(out))"
    )
    result = subprocess.run(
        [str(peer.python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    import json

    versions: dict[str, str] = json.loads(result.stdout)
    return versions


def requirements_digest(peer: Peer) -> str:
    """A short digest of the requirement list (for the results file)."""
    return hashlib.sha256("\n".join(peer.requirements).encode()).hexdigest()[:12]
