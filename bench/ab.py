#!/usr/bin/env python3
"""Interleaved A/B of server variants under h2load: calls/s and the
server's CPU time per call, medians over reps.

Each variant is a label, a server command line and optional environment
(an allocator to preload, a flag to try). All variants run at once, each
on its own loopback port, and every rep loads them in turn, so a burst of
noise on this shared machine falls on all of them alike. CPU per call
(utime + stime over the window, from /proc) is the steadier figure. The
servers are the shared harness's (interop/harness) and the h2load runs
bench/h2load.py's, as in `make bench`.

    bench/ab.py --method GetSequence --reps 5 \\
        'base=target/release/server' \\
        'jemalloc=LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 target/release/server' \\
        'cq1=target/release/server --completion-queues 1'

A variant is LABEL=[NAME=VALUE ...] COMMAND [ARGS ...]. Unless the command
names an address on 127.0.0.1 itself (the grpc-go peer:
'go=target/bench/go-server -addr 127.0.0.1:0'), `--host 127.0.0.1 --port 0`
is appended. The server must print `listening on HOST:PORT` first, as
target/release/server and target/bench/go-server do.
Needs h2load (Debian: nghttp2-client).
"""

import argparse
import os
import re
import shlex
import statistics
import sys
import tempfile

# The harness the interop suite uses too (interop/harness).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "interop"))
from harness.servers import Server, server_env  # noqa: E402

from h2load import METHODS, run_h2load  # noqa: E402


def start_variant(spec):
    """The server of one LABEL=[NAME=VALUE ...] COMMAND [ARGS ...],
    listening, labelled LABEL."""
    label, _, rest = spec.partition("=")
    words = shlex.split(rest)
    variables = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        variables[name] = value
    if not any("127.0.0.1" in word for word in words):
        words += ["--host", "127.0.0.1", "--port", "0"]
    return Server(words, name=label, env=server_env(**variables)).require_started()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", metavar="LABEL=COMMAND")
    parser.add_argument("--method", action="append", choices=METHODS,
                        help="repeatable; default: all four")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4, help="seconds (whole)")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()
    methods = args.method or METHODS
    servers = []
    with tempfile.TemporaryDirectory() as out:
        results = {}
        try:
            for spec in args.variants:
                servers.append(start_variant(spec))
            for rep in range(args.reps):
                for method in methods:
                    for server in servers:
                        run = run_h2load(server.address, method, connections=args.connections,
                                         streams=args.streams, warmup_s=1, duration_s=args.duration,
                                         work_dir=out, server_pid=server.pid)
                        results.setdefault((server.name, method), []).append(run)
                        print(f"rep {rep + 1} {method:15} {server.name:12} "
                              f"{run['calls_per_s']:10.0f} calls/s "
                              f"{run['server_cpu_us_per_call']:8.1f} us CPU/call", flush=True)
        finally:
            for server in servers:
                server.stop()

    def median(label, method, key):
        return statistics.median(run[key] for run in results[(label, method)])

    base = servers[0].name
    print(f"\nmedians of {args.reps}, h2load {args.connections}x{args.streams}, "
          f"{args.duration} s; ratios against {base}")
    print("| method | variant | calls/s | CPU us/call | calls/s ratio | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for method in methods:
        base_rate = median(base, method, "calls_per_s")
        base_cpu = median(base, method, "server_cpu_us_per_call")
        for server in servers:
            rate = median(server.name, method, "calls_per_s")
            cpu = median(server.name, method, "server_cpu_us_per_call")
            print(f"| {method} | {server.name} | {rate:,.0f} | {cpu:.1f} | "
                  f"{rate / base_rate:.2f} | {cpu / base_cpu:.2f} |")


if __name__ == "__main__":
    main()
