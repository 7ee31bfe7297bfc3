"""A worker process that parses large V2 JSON bodies, off the event loop.

Limits first: one worker process, so large bodies are parsed one at a time (the others
wait in line, already admitted and counted by ``rest.admission``); only the JSON part
of a body of at least ``min_bytes`` goes there (a binary-extension body with a small
JSON header is decoded in place: its tensors are a copy-free view). ``min_bytes`` 0
parses everything on the loop.

Why a process and not a thread: orjson and numpy's list conversion hold the GIL for the
whole call, so an 8 MB body parsed in a thread still stops the loop for ~0.3 s. In a
process, the loop only copies the body out and the decoded arrays back (~10 ms), and
the memory the parse needs (a JSON number costs ~30 bytes as a Python float) is
the worker's, not the serving process's. The worker is started with ``spawn`` (the
serving process has threads, which ``fork`` would copy in an unknown state) when the
server starts, and replaced if it dies; the request that was in it gets 503. If it
cannot start at all (multiprocessing needs a writable /dev/shm), the runtime logs why
and parses every body on the loop rather than refusing to serve.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from kubeserve_runtime.errors import Overloaded
from kubeserve_runtime.payloads import InferRequest
from kubeserve_runtime.rest.v2codec import decode_body

log = logging.getLogger(__name__)


def decode_v2(body: bytes, header_length: str | None) -> InferRequest:
    """Parse and decode a V2 infer body (in the worker, or in place)."""
    return decode_body(body, header_length)


def json_size(body: bytes, header_length: str | None) -> int:
    """Return the size of a body's JSON part (the whole body without the binary header)."""
    if header_length is None:
        return len(body)
    try:
        return int(header_length)
    except ValueError:
        return 0  # decoded in place, where the bad header gets its 400


def _ready() -> bool:
    """A no-op the worker runs once at start, so its imports happen before any request."""
    return True


class ParseWorker:
    """Decodes V2 bodies: in place when small, in the worker process when large."""

    def __init__(self, min_bytes: int) -> None:
        self.min_bytes = min_bytes or sys.maxsize
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        """Return the worker pool, starting it if needed."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def start(self) -> None:
        """Start the worker process and wait until it has imported the decoder."""
        if self.min_bytes == sys.maxsize:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor(), _ready)
        except (OSError, BrokenProcessPool) as exc:
            log.warning(
                f"the body parser process did not start ({exc}); parsing every body on the "
                "event loop",
                extra={"fields": {"error": str(exc)}},
            )
            self.close()
            self.min_bytes = sys.maxsize

    async def decode(self, body: bytes, header_length: str | None) -> InferRequest:
        """Decode a V2 infer body (raises InvalidInput, or Overloaded if the worker died)."""
        if len(body) < self.min_bytes or json_size(body, header_length) < self.min_bytes:
            return decode_v2(body, header_length)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), decode_v2, body, header_length)
        except BrokenProcessPool:
            self.close()
            raise Overloaded("the body parser restarted; retry the request") from None

    def close(self) -> None:
        """Stop the worker process (it is started again on the next large body)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
