"""The committed gRPC stubs are what grpcio-tools generates from the committed proto."""

from __future__ import annotations

from pathlib import Path

from kubeserve_runtime.grpc.stubs import GENERATED, generate


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    """Regenerating gives byte-identical files (run `make grpc-stubs` when this fails)."""
    fresh = generate(tmp_path)
    assert fresh
    for name, text in fresh.items():
        committed = (GENERATED / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is stale: run `make grpc-stubs`"
