"""The one harness of the Python side, shared by the interop suite
(interop/tests, interop/soak.py) and the benchmarks (bench/run.py,
bench/ab.py).

- paths.py: where the repository's parts are, and the Rust binaries;
- stubs.py: the guide's Python stubs, generated from proto/fibonacci.proto;
- servers.py: a server process (the Rust binary, the guide's Python server,
  the grpc-go peer) started on a port of its own and read as it prints;
- procfs.py: a process's memory and CPU time, the machine's load, from /proc;
- wire.py: gRPC request bodies by hand, for tools that send raw bytes.

Nothing here depends on pytest: the suite's fixtures live in
interop/tests/conftest.py, built on these modules. Scripts outside interop/
put interop/ on sys.path and import `harness.<module>`.
"""
