"""Closing a listening socket without resetting connections the kernel already accepted.

Limits first: Linux only (elsewhere both functions report that they could do nothing,
and the listener is closed the ordinary way).

The kernel completes TCP handshakes on its own and queues the connections until the
server accepts them; closing the listener resets every connection still queued, and
their clients have usually sent their request by then. So the drain first makes the
listening socket drop new SYNs (a classic BPF socket filter: no privilege needed; a
client whose SYN is dropped retries it and finds the port closed, before sending
anything), then waits until the server has accepted what is queued, then closes it.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Any

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_TCPI_UNACKED = struct.Struct("24xI")  # for a listener: connections waiting in the queue
_TCP_INFO_SIZE = 104
# ldb [13] (TCP flags; socket filters see the TCP header at offset 0); jset SYN ? drop :
# accept; ret 0 (drop); ret all (accept)
_DROP_SYN = (
    (0x30, 0, 0, 13),
    (0x45, 0, 1, 0x02),
    (0x06, 0, 0, 0),
    (0x06, 0, 0, 0xFFFFFFFF),
)


def refuse_new_connections(sock: Any) -> bool:
    """Make a listening TCP socket drop new connection attempts; False where unsupported.

    ``sock`` is a ``socket.socket`` or asyncio's ``TransportSocket``.
    """
    program = b"".join(struct.pack("HBBI", *op) for op in _DROP_SYN)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(_DROP_SYN), ctypes.addressof(buffer))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True  # the kernel copied the program; the buffer may go


def accept_queue_length(sock: Any) -> int | None:
    """Return how many connections wait in a listener's accept queue (None if unknown)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCPI_UNACKED.size:
        return None
    return int(_TCPI_UNACKED.unpack_from(info)[0])
