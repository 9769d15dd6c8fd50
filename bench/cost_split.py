#!/usr/bin/env python3
"""Where one call's instructions go in the server: callgrind's count of
N calls from h2load, split by what each function is part of.

    python3 bench/cost_split.py [--server target/release/server]
        [--method GetSequence] [--value 46] [--warm 200] [--calls 1000]
        [--streams 1] [--top 0]

The server runs under valgrind's callgrind; h2load makes `--warm` calls,
the counters are zeroed (callgrind_control --zero), h2load makes
`--calls` more, and the counters are dumped before shutdown, so start-up,
warm-up and shutdown are all left out. Each function's own instructions
(not its callees') go to one part, by its name (PARTS, first match wins);
the table gives each part's instructions per call and share. `--top N`
also lists the N costliest functions with their part, to check the
patterns. Instructions, not time: the kernel's share (system calls,
futex waits and wake-ups) is not in it; `perf record` is the tool for
that (BENCHMARKS.md says how it was run).

Needs valgrind (callgrind_control, callgrind_annotate) and h2load.
Standard library only.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (part, pattern on the demangled function name), first match wins.
PARTS = [
    ("malloc and free", r"^(malloc|free|calloc|realloc|cfree|_int_malloc|_int_free|_int_realloc|"
                        r"malloc_consolidate|tcache_|__libc_malloc|__libc_free|__libc_calloc|"
                        r"__libc_realloc|unlink_chunk|operator new|operator delete|"
                        r"__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_|__rg_|"
                        r"gpr_malloc|gpr_free|gpr_realloc|arena_get2|sysmalloc)"),
    ("this project's code", r"fibonacci_grpc::|^service::|fibonacci::"),
    ("protobuf (Rust)", r"^protobuf::|<protobuf::"),
    ("grpcio's Rust side", r"grpcio::|<grpcio::|grpcwrap_|futures_|futures::|<futures"),
    ("core: HTTP/2 writer and its endpoint writes",
     r"write_action|grpc_chttp2_begin_write|grpc_chttp2_end_write|WriteContext|"
     r"hpack_encoder|HPackCompressor|Encoder::|grpc_chttp2_encode|frame_data.*(Encode|encode)|"
     r"grpc_chttp2_(data|rst|settings|ping|window_update|goaway)_?.*create|"
     r"PosixEndpointImpl::(Write|TcpFlush|HandleWrite)|tcp_flush|WriteSizePolicy|"
     r"grpc_chttp2_initiate_write|grpc_chttp2_list_add_writ|grpc_chttp2_list_pop_writ|"
     r"chttp2_transport.*write|write_cycle|perform_stream_op|send_message|"
     r"grpc_chttp2_mark_stream_writable|maybe_start_some_streams"),
    ("core: HTTP/2 reader and parser",
     r"grpc_chttp2_perform_read|read_action|parse_frame|init_frame_parser|HPackParser|"
     r"hpack_parser|grpc_chttp2_data_parser|frame_data|grpc_chttp2_.*parse|"
     r"PosixEndpointImpl::(Read|HandleRead|TcpDoRead|MaybeMakeReadSlices)|"
     r"grpc_chttp2_maybe_complete_recv|Deframe|grpc_deframe"),
    ("core: completion queues and the hand-off between threads",
     r"grpc_completion_queue|cq_end_op|cq_next|cq_pluck|grpc_cq_|CqEventQueue|"
     r"ExecCtx|Combiner|combiner|WorkStealing|ThreadPool|ThreadState|WorkQueue|"
     r"BasicWorkQueue|PosixEngineClosure|SelfDeletingClosure|pthread_|__lll_|"
     r"futex|lll_|Mutex|CondVar|absl::.*Mutex|absl::.*Notification|sem_|"
     r"Epoll1Poller|epoll|PollPoller|TimerManager|TimerList|EventEngine.*Run|"
     r"grpc_closure|Closure::Run|grpc_core::Closure|ClosureList"),
    ("core: call and filter path",
     r"grpc_core::|grpc_call|grpc_server|grpc_metadata|grpc_slice|grpc_byte_buffer|"
     r"grpc_chttp2|grpc_|gpr_|absl::|Server::|Call|Filter|Promise|Arena|Slice|"
     r"Metadata|Batch|chttp2|std::"),
    ("libc string and memory", r"^(mem|str|__mem|__str|wmem)"),
]


def split(annotated: str, calls: int, top: int):
    """The parts' instructions per call, from callgrind_annotate's output."""
    line = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$")
    totals, functions = {}, []
    for text in annotated.splitlines():
        match = line.match(text)
        if not match or ":" not in match.group(2):
            continue
        count = int(match.group(1).replace(",", ""))
        where, _, name = match.group(2).partition(":")
        name = re.sub(r"\s*\[[^\]]*\]$", "", name)
        if where.endswith(("PROGRAM TOTALS", "Ir")) or name.startswith("PROGRAM"):
            continue
        part = next((p for p, pattern in PARTS if re.search(pattern, name)), "other")
        totals[part] = totals.get(part, 0) + count
        functions.append((count, part, name))
    whole = sum(totals.values())
    print(f"| part | instructions per call | share |")
    print(f"|---|---:|---:|")
    for part, _ in PARTS + [("other", None)]:
        if part in totals:
            print(f"| {part} | {totals[part] / calls:,.0f} | {100 * totals[part] / whole:.1f}% |")
    print(f"| all | {whole / calls:,.0f} | 100% |")
    if top:
        print()
        for count, part, name in sorted(functions, reverse=True)[:top]:
            print(f"{count / calls:10,.0f}  {part:45.45}  {name[:110]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="target/release/server")
    parser.add_argument("--method", default="GetSequence")
    parser.add_argument("--value", type=int, default=46)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        body = subprocess.run([sys.executable, "-m", "harness.wire", str(args.value)],
                              cwd=HERE.parent / "interop", capture_output=True, check=True).stdout
        (work / "body").write_bytes(body)
        out = open(work / "server.out", "w+")
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/callgrind.out",
             args.server, "--host", "127.0.0.1", "--port", "0"],
            stdout=out, stderr=subprocess.DEVNULL)
        address = None
        for _ in range(300):
            match = re.search(r"^listening on (\S+)", Path(work / "server.out").read_text(), re.M)
            if match:
                address = match.group(1)
                break
            time.sleep(0.1)
        if address is None:
            server.kill()
            sys.exit("the server did not start under valgrind")

        def load(calls):
            subprocess.run(
                ["h2load", "-c", "1", "-m", str(args.streams), "-n", str(calls),
                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                 "-d", str(work / "body"), f"http://{address}/fibonacci.Fibonacci/{args.method}"],
                stdout=subprocess.DEVNULL, check=True)

        try:
            load(args.warm)
            subprocess.run(["callgrind_control", "--zero", str(server.pid)],
                           stdout=subprocess.DEVNULL, check=True)
            load(args.calls)
            subprocess.run(["callgrind_control", "--dump", str(server.pid)],
                           stdout=subprocess.DEVNULL, check=True)
            dump = work / "callgrind.out.1"
            for _ in range(100):
                if dump.exists() and "summary:" in dump.read_text(errors="replace"):
                    break
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait()
        annotated = subprocess.run(
            ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
            capture_output=True, text=True, check=True).stdout
    print(f"{args.method}({args.value}), {args.calls} calls, {args.streams} in flight: "
          f"instructions per call by part (callgrind, self cost)")
    split(annotated, args.calls, args.top)


if __name__ == "__main__":
    main()
