"""Why ``kubeserve local`` cannot go on: one error type, printed as one message.

Limits: no error codes; the command prints the message and exits 1, so each message
names the cause and the flag or file that fixes it.
"""

from __future__ import annotations


class LocalError(RuntimeError):
    """kubeserve local cannot go on; the message says why and what to do."""
