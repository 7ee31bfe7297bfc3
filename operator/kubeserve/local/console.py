"""What ``kubeserve local`` prints: progress lines and the ready message.

Limits: plain lines on stdout, flushed at once, for people and for
:class:`~kubeserve.local.harness.LocalProcess`, which reads them as they come. Two
lines are a contract with it: ``SERVING_LINE`` (one per ready component) and
``READY_END`` (the last line of the ready message); change them together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kubeserve.local.samples import sample_requests

if TYPE_CHECKING:  # the harness imports this module without starting anything
    from kubeserve.local.supervisor import Running

PREFIX = "kubeserve local: "
SERVING_LINE = re.compile(r"serving (\S+) at (http://\S+)")
"""The line `kubeserve local` prints per ready component; LocalProcess parses it."""
READY_END = "Ctrl-C stops everything."
"""The last line of the ready message."""


def say(message: str) -> None:
    """Progress to stdout, flushed at once (callers read it line by line)."""
    print(f"{PREFIX}{message}", flush=True)


def print_ready(name: str, running: Sequence[Running]) -> None:
    """The URLs, how the cluster would route to each, and sample requests."""
    say(f"{name} is ready")
    for item in running:
        p = item.predictor
        print(
            f"  serving {p.component} at {item.url}  (gRPC {item.host}:{item.ports.grpc}, "
            f"metrics http://{item.host}:{item.ports.metrics}/metrics; in the cluster: "
            f"{p.routing})",
            flush=True,
        )
    print("Try:", flush=True)
    for item in running:
        for line in sample_requests(item.url, item.predictor.model_name, item.metadata):
            print(f"  {line}", flush=True)
    print(READY_END, flush=True)
