"""The guide's Python stubs (fibonacci_pb2.py, fibonacci_pb2_grpc.py),
generated with grpc_tools.protoc from the project's own
proto/fibonacci.proto into interop/python/generated, where the guide's
server and clients look for them.

Generated again on every run (nothing generated is checked in), so a
changed proto never meets stale stubs. `make interop` and `make soak` run
this module before the suite:

    PYTHONPATH=interop python -m harness.stubs
"""

import subprocess
import sys
from pathlib import Path

from harness.paths import GENERATED, PROTO_DIR


def generate_stubs(python: str = sys.executable, out_dir: Path = GENERATED) -> Path:
    """Writes the stubs into `out_dir` with `python`'s grpc_tools (the
    interpreter that will import them, so generated code and protobuf
    runtime match) and returns `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # `python -m grpc_tools.protoc` adds grpc_tools' own include directory
    # (the well-known types) by itself.
    subprocess.run(
        [python, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
         str(PROTO_DIR / "fibonacci.proto")],
        check=True,
    )
    return out_dir


def import_stubs():
    """Generates the stubs for this interpreter, puts them on sys.path and
    returns the two modules (fibonacci_pb2, fibonacci_pb2_grpc)."""
    generated = str(generate_stubs())
    if generated not in sys.path:
        sys.path.insert(0, generated)
    import fibonacci_pb2
    import fibonacci_pb2_grpc
    return fibonacci_pb2, fibonacci_pb2_grpc


if __name__ == "__main__":
    generate_stubs()
