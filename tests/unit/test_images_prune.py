"""Pruning image archives leaves other checkouts' recent archives alone."""

from __future__ import annotations

import os
from pathlib import Path

from kubeserve.images.catalog import stale_archives


def test_only_the_oldest_archives_beyond_the_kept_number_are_stale(tmp_path: Path) -> None:
    archives = []
    for age, key in enumerate(["e", "d", "c", "b", "a"]):
        path = tmp_path / f"runtime-{key}.tar"
        path.write_bytes(b"")
        os.utime(path, (1000 - age, 1000 - age))
        archives.append(path)
    current = tmp_path / "runtime-a.tar"  # the oldest file, but this checkout's own key
    assert stale_archives(archives, current, keep=3) == [
        tmp_path / "runtime-b.tar",
        tmp_path / "runtime-c.tar",
    ]
    assert stale_archives(archives, current, keep=5) == []
    assert stale_archives(archives, current, keep=1) == [
        tmp_path / f"runtime-{k}.tar" for k in ("b", "c", "d", "e")
    ]
