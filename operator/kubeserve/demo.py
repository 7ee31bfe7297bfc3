"""The demo behind ``make demo``: runs, for real, every piece that exists so far.

Each step prints what it is about to do and what came of it, so a newcomer can follow
along and reproduce any step by hand.
"""

from __future__ import annotations

import subprocess
import sys

from kubeserve import __version__


def step(title: str) -> None:
    """Print a step header."""
    print(f"\n==> {title}", flush=True)


def main() -> int:
    """Run the demo and return its exit status."""
    step("kubeserve is installed in .venv")
    print(f"kubeserve {__version__} ({sys.executable})")
    step("the operator and runtime command lines answer")
    for cmd in (["kubeserve", "--version"], ["kubeserve-runtime", "--version"]):
        out = subprocess.run(
            [sys.executable, "-m", f"{cmd[0].replace('-', '_')}.cli", *cmd[1:]],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"$ {' '.join(cmd)}\n{out.stdout.strip()}")
    step("done")
    print("Nothing was left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
