"""Regenerating the committed gRPC stubs from ``generated/grpc_predict_v2.proto``.

The stubs are committed (the image needs no grpcio-tools); ``generate`` rebuilds them
with grpcio-tools into any folder, so a test can compare a fresh build with the
committed files, and ``python -m kubeserve_runtime.grpc.stubs`` rewrites them in place.
The proto is compiled with ``-I serving_image`` so generated imports are absolute
(``kubeserve_runtime.grpc.generated...``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

GENERATED = Path(__file__).resolve().parent / "generated"
PROTO = GENERATED / "grpc_predict_v2.proto"
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")


def generate(out_dir: Path) -> dict[str, str]:
    """Compile the proto into ``out_dir`` and return {file name: text} of the outputs."""
    from grpc_tools import protoc  # dev-only dependency

    root = GENERATED.parents[2]
    relative = PROTO.relative_to(root)
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(relative),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    produced = out_dir / relative.parent
    return {name: (produced / name).read_text(encoding="utf-8") for name in OUTPUTS}


def main() -> int:
    """Rewrite the committed stubs."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in generate(Path(tmp)).items():
            (GENERATED / name).write_text(text, encoding="utf-8")
    print(f"regenerated {', '.join(OUTPUTS)} in {GENERATED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
