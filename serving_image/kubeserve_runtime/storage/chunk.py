"""The unit in which model files are streamed: read, hashed, charged to the quota, written.

Limits: one size for every reader and writer of model bytes. 1 MiB keeps the memory of
a download to one chunk in flight while a multi-gigabyte model still takes few system
calls. Writers charge the quota per chunk before writing it, so no write passes the
limit.
"""

from __future__ import annotations

CHUNK_BYTES = 1 << 20
