#!/usr/bin/env python3
"""The issue's tool, h2load (Debian's nghttp2-client), against one server:
`run_h2load` for bench/run.py's cross-check and bench/ab.py's A/B, and a
command line for a server started by hand:

    bench/h2load.py HOST:PORT [--connections 2] [--streams 16]
        [--duration 4] [--server-pid PID]

One gRPC request body per call (interop/harness/wire.py builds it). Unlike
target/release/bench it checks only the HTTP status (200), not the
grpc-status or the values, and it sends each request stream whole
(StreamSequence gets 4, 2, 1 in one body, not interleaved). With the
server's pid it also gives the server's CPU time per call (utime + stime
over the measured window, from /proc).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# The harness the interop suite uses too (interop/harness).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "interop"))
from harness.procfs import cpu_seconds  # noqa: E402
from harness.wire import number_request_body  # noqa: E402

METHODS = ["AtIndex", "GetSequence", "SumIndicies", "StreamSequence"]
# The values each method's body carries: the guide's request shapes.
H2LOAD_VALUES = {
    "AtIndex": [46],
    "GetSequence": [46],
    "SumIndicies": [7, 5],
    "StreamSequence": [4, 2, 1],  # one body: h2load cannot interleave
}


def run_h2load(address, method, *, connections, streams, warmup_s, duration_s, work_dir, server_pid=None):
    """h2load against `address` with `connections` x `streams` calls of
    `method` in flight, `warmup_s` of warm-up and then `duration_s`
    measured (whole seconds, at least 1 each); its request body is written
    into `work_dir`. Server CPU figures need `server_pid` (else None)."""
    body = os.path.join(work_dir, f"h2load-{method}.bin")
    with open(body, "wb") as f:
        f.write(number_request_body(H2LOAD_VALUES[method]))
    # h2load takes whole seconds.
    warmup, duration = max(1, round(warmup_s)), max(1, round(duration_s))
    argv = ["h2load", "-c", str(connections), "-m", str(streams),
            "-D", str(duration), f"--warm-up-time={warmup}",
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            "-d", body, f"http://{address}/fibonacci.Fibonacci/{method}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = after = None
    if server_pid is not None:
        time.sleep(warmup + 0.05)
        before = cpu_seconds(server_pid)
    out, _ = process.communicate(timeout=120)
    if server_pid is not None:
        after = cpu_seconds(server_pid)
    rate = re.search(r"^finished in [0-9.]+s, ([0-9.]+) req/s", out, re.M)
    counts = re.search(r"^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout", out, re.M)
    if process.returncode != 0 or not rate or not counts:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out}")
    calls_per_s = float(rate.group(1))
    calls = calls_per_s * duration
    cpu_s = after - before if server_pid is not None else None
    return {"calls_per_s": calls_per_s,
            "errors": sum(int(counts.group(i)) for i in (3, 4, 5)),
            "server_cpu_percent": 100 * cpu_s / duration if cpu_s is not None else None,
            "server_cpu_us_per_call": cpu_s * 1e6 / calls if cpu_s is not None and calls else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", metavar="HOST:PORT")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--duration", type=int, default=4, help="seconds (whole), after 1 s of warm-up")
    parser.add_argument("--server-pid", type=int, help="the server's pid, for its CPU time per call")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("h2load not found: apt-get install nghttp2-client", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work_dir:
        for method in METHODS:
            run = run_h2load(args.address, method, connections=args.connections, streams=args.streams,
                             warmup_s=1, duration_s=args.duration, work_dir=work_dir,
                             server_pid=args.server_pid)
            cpu = run["server_cpu_us_per_call"]
            print(f"{method:<15} {run['calls_per_s']:10,.0f} calls/s   {run['errors']} not 200"
                  + (f"   {cpu:.1f} us server CPU/call" if cpu is not None else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
