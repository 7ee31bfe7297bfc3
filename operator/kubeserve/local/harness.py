"""``LocalProcess``: ``kubeserve local`` as a subprocess, for the demo and the tests.

Limits: it reads stdout line by line in a thread and knows the command only by its
printed contract (:mod:`.console`); stderr is merged into stdout, so errors are in
``output`` too. One process per instance; ``stop`` always reaps it.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from kubeserve.local.console import READY_END, SERVING_LINE
from kubeserve.local.errors import LocalError
from kubeserve.local.supervisor import READY_TIMEOUT


class LocalProcess:
    """``kubeserve local`` as a subprocess (the demo, tests): its stdout read line by line.

    Each line is kept in ``output`` and passed to ``echo`` as it arrives; ``urls`` waits
    for the "serving COMPONENT at URL" lines; ``stop`` sends SIGTERM and waits.
    """

    def __init__(self, *args: str, echo: Callable[[str], None] | None = None) -> None:
        self.output: list[str] = []
        self._echo = echo
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kubeserve.cli", "local", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Copy stdout lines into the queue; None marks the end."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _take(self, timeout: float) -> str | None:
        """The next line (recorded and echoed); None at the end of the output."""
        line = self._lines.get(timeout=timeout)
        if line is not None:
            self.output.append(line)
            if self._echo is not None:
                self._echo(line)
        return line

    def urls(self, count: int, timeout: float = READY_TIMEOUT) -> dict[str, str]:
        """Wait for the ready message naming `count` components; return {component: URL}."""
        found: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        line: str | None = ""
        while len(found) < count or line != READY_END:
            try:
                line = self._take(max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"kubeserve local not ready after {timeout:.0f}s:\n" + "\n".join(self.output)
                ) from None
            if line is None:
                raise LocalError(
                    f"kubeserve local exited with {self.process.wait()}:\n" + "\n".join(self.output)
                )
            if match := SERVING_LINE.search(line):
                found[match.group(1)] = match.group(2)
        return found

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait, collect the rest of the output; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(10)
        while not self._lines.empty():
            self._take(0)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code
