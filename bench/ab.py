#!/usr/bin/env python3
"""Interleaved A/B of server variants under h2load: calls/s and the
server's CPU time per call, medians over reps.

Each variant is a label, a server command line and optional environment
(an allocator to preload, a flag to try). All variants run at once, each
on its own loopback port, and every rep loads them in turn, so a burst of
noise on this shared machine falls on all of them alike. CPU per call
(utime + stime over the window, from /proc) is the steadier figure.

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
import subprocess
import tempfile
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# A gRPC message: not compressed, 4-byte length 2, Number{value} (< 128).
def message(value):
    return bytes([0, 0, 0, 0, 2, 0x08, value])


BODIES = {
    "AtIndex": message(46),
    "GetSequence": message(46),
    "SumIndicies": message(7) + message(5),
    "StreamSequence": message(4) + message(2) + message(1),
}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class Variant:
    def __init__(self, spec):
        self.label, _, rest = spec.partition("=")
        words = shlex.split(rest)
        self.env = dict(os.environ)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            self.env[name] = value
        if not any("127.0.0.1" in word for word in words):
            words += ["--host", "127.0.0.1", "--port", "0"]
        self.command = words
        self.process = None
        self.address = None

    def start(self):
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        first = self.process.stdout.readline()
        found = re.match(r"listening on (\S+)", first)
        if not found:
            raise SystemExit(f"{self.label}: no listening line, got {first!r}")
        self.address = found.group(1)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait()


def h2load(variant, method, body_path, args):
    before = cpu_seconds(variant.process.pid)
    started = time.monotonic()
    out = subprocess.run(
        ["h2load", "-c", str(args.connections), "-m", str(args.streams), "-D", str(args.duration),
         "--warm-up-time=1", "-H", "content-type: application/grpc", "-H", "te: trailers",
         "-d", body_path, f"http://{variant.address}/fibonacci.Fibonacci/{method}"],
        capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(variant.process.pid) - before
    wall = time.monotonic() - started
    rate = float(re.search(r"finished in .*?, ([0-9.]+) req/s", out).group(1))
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    # The CPU window includes the warm-up; scale the calls to it.
    calls = rate * wall
    return rate, cpu / calls * 1e6 if calls else float("nan"), done


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", metavar="LABEL=COMMAND")
    parser.add_argument("--method", action="append", choices=sorted(BODIES),
                        help="repeatable; default: all four")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4, help="seconds (whole)")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()
    methods = args.method or list(BODIES)
    variants = [Variant(spec) for spec in args.variants]
    results = {(v.label, m): [] for v in variants for m in methods}
    with tempfile.TemporaryDirectory() as bodies:
        try:
            for variant in variants:
                variant.start()
            for rep in range(args.reps):
                for method in methods:
                    path = os.path.join(bodies, method)
                    with open(path, "wb") as body:
                        body.write(BODIES[method])
                    for variant in variants:
                        rate, cpu, _ = h2load(variant, method, path, args)
                        results[(variant.label, method)].append((rate, cpu))
                        print(f"rep {rep + 1} {method:15} {variant.label:12} "
                              f"{rate:10.0f} calls/s {cpu:8.1f} us CPU/call", flush=True)
        finally:
            for variant in variants:
                variant.stop()
    base = variants[0].label
    print(f"\nmedians of {args.reps}, h2load {args.connections}x{args.streams}, "
          f"{args.duration} s; ratios against {base}")
    print(f"| method | variant | calls/s | CPU us/call | calls/s ratio | CPU ratio |")
    print(f"|---|---|---:|---:|---:|---:|")
    for method in methods:
        base_rate = statistics.median(r for r, _ in results[(base, method)])
        base_cpu = statistics.median(c for _, c in results[(base, method)])
        for variant in variants:
            rate = statistics.median(r for r, _ in results[(variant.label, method)])
            cpu = statistics.median(c for _, c in results[(variant.label, method)])
            print(f"| {method} | {variant.label} | {rate:,.0f} | {cpu:.1f} | "
                  f"{rate / base_rate:.2f} | {cpu / base_cpu:.2f} |")


if __name__ == "__main__":
    main()
