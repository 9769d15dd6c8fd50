#!/usr/bin/env python3
"""`make bench`: the Rust server against the guide's Python server, against
tonic 0.14 (bench/tonic: target/bench/tonic-server, which `make bench`
builds), and against grpc-go 1.33 (the peer the performance issue compares
with) when its binary has been built (`make bench-go`:
target/bench/go-server).

Starts the servers on ports of their own (127.0.0.1, port 0), then runs
target/release/bench against each, alternating, and prints:

1. per method (the guide's request shapes), the median over --reps runs of
   calls/s, messages/s, latency percentiles, errors and the server's CPU
   time per call, side by side, with the Rust / Python, Rust / grpc-go and
   Rust / tonic ratios;
2. the same per method from h2load (the issue's tool), when installed,
   medians of --h2load-reps runs;
3. calls/s against calls in flight (1, 8, 64, 512; AtIndex), plotted into
   a PNG (matplotlib) or, without matplotlib, an ASCII chart;
4. server RSS per held StreamSequence call (fresh servers);
5. the Rust server's idle RSS and its time from exec to the
   "listening on" line (median of 10 starts).

--h2load-only runs only 2 (`--h2load-only --h2load-reps 3 --no-python
--no-tonic`: the Rust server against grpc-go with the issue's tool, about 2
minutes).

Everything it measured goes to --out (results.json, results.md); the PNG
goes to --png. Starts, reads and stops the servers with the harness the
interop suite uses too (interop/harness); uses only the standard library
(plus matplotlib for the plot, when it is there).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The harness the interop suite uses too (interop/harness).
sys.path.insert(0, os.path.join(ROOT, "interop"))
from harness.paths import GO_SERVER, PYTHON_DIR, TONIC_SERVER  # noqa: E402
from harness.procfs import load_average, resident_bytes  # noqa: E402
from harness.servers import (  # noqa: E402
    Server, go_server_argv, python_server_argv, rust_server_argv, tonic_server_argv)
from harness.stubs import generate_stubs  # noqa: E402

from h2load import METHODS, run_h2load  # noqa: E402

# The issue's reference figures (h2load, 2 connections x 16 streams, 4 s).
GRPC_GO = {
    "AtIndex": "69-77k",
    "GetSequence": "26-28k",
    "SumIndicies": "64k",
    "StreamSequence": "34-60k",
}
GUIDE_PYTHON_ISSUE = {
    "AtIndex": "3.5k",
    "GetSequence": "0.26k",
    "SumIndicies": "1.8k",
    "StreamSequence": "0.63k",
}


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class LoadSampler:
    """The 1-minute load average every 5 s while the benchmark runs: other
    work on the machine shows up here (the benchmark itself adds about 1.5
    to 2)."""

    def __init__(self):
        self.samples = []
        self.stopped = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stopped.is_set():
            self.samples.append(float(load_average().split()[0]))
            self.stopped.wait(5)

    def stop(self):
        self.stopped.set()
        return self.samples


def start_labelled_server(name, argv):
    """A server on a port of its own, listening, labelled `name` in the
    tables."""
    return Server(argv, name=name).require_started()


def resident_kb(server):
    """The server's resident memory in kB, the unit of the tables."""
    return resident_bytes(server.pid) // 1024


# How the tables name each server, and the peers the Rust server is
# compared with, in column order (only those that ran).
TITLES = {"rust": "Rust", "python": "Python", "grpc-go": "grpc-go", "tonic": "tonic"}
PEERS = ["python", "grpc-go", "tonic"]


def peers_of(by_server):
    return [p for p in PEERS if p in by_server]


def bench(binary_dir, server, *args):
    argv = [os.path.join(binary_dir, "bench"), "--address", server.address,
            "--server-pid", str(server.pid), "--json", *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    if done.stderr.strip():
        result["stderr"] = done.stderr.strip()
    return result


def median_run(runs):
    """The run with the median calls/s (its latencies go with it)."""
    ordered = sorted(runs, key=lambda r: r["calls_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def med(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(a, b, digits=1):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.{digits}f}x"


def load_matrix(args, servers):
    cells = {m: {s.name: [] for s in servers} for m in METHODS}
    for rep in range(args.reps):
        for method in METHODS:
            for server in servers:  # alternating: rust, python, rust, ...
                log(f"rep {rep + 1}/{args.reps} {method} on {server.name}")
                cells[method][server.name].append(bench(
                    args.bin, server, "--method", method,
                    "--channels", args.channels, "--in-flight", args.in_flight,
                    "--warmup", args.warmup, "--duration", args.duration))
    return cells


def matrix_table(cells, reps):
    lines = [
        "| method | server | calls/s | messages/s | p50 us | p90 us | p99 us | p99.9 us | errors "
        "| server CPU us/call | server CPU % | generator CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, by_server in cells.items():
        for name, runs in by_server.items():
            mid = median_run(runs)
            lines.append(
                f"| {method} | {name} | {fmt(med(runs, 'calls_per_s'))} | {fmt(med(runs, 'messages_per_s'))} "
                f"| {fmt(mid['latency_us_p50'])} | {fmt(mid['latency_us_p90'])} | {fmt(mid['latency_us_p99'])} "
                f"| {fmt(mid['latency_us_p999'])} | {sum(r['errors'] for r in runs)} "
                f"| {fmt(med(runs, 'server_cpu_us_per_call'), 1)} | {fmt(med(runs, 'server_cpu_percent'))} "
                f"| {fmt(med(runs, 'bench_cpu_percent'))} |")
    lines.append("")
    lines.append(f"Medians of {reps} runs per cell; latencies are those of the median run.")
    lines.append("")
    peers = peers_of(next(iter(cells.values())))
    header = "| method | Rust calls/s |"
    for peer in peers:
        title = TITLES[peer]
        header += f" {title} calls/s | Rust / {title} calls/s | Rust / {title} server CPU per call |"
    lines.append(header + " grpc-go (issue) | Python (issue) |")
    lines.append("|---|---:|" + "---:|---:|---:|" * len(peers) + "---:|---:|")
    for method, by_server in cells.items():
        rust = by_server["rust"]
        line = f"| {method} | {fmt(med(rust, 'calls_per_s'))} |"
        for peer in peers:
            runs = by_server[peer]
            line += (f" {fmt(med(runs, 'calls_per_s'))} "
                     f"| {ratio(med(rust, 'calls_per_s'), med(runs, 'calls_per_s'))} "
                     f"| {ratio(med(rust, 'server_cpu_us_per_call'), med(runs, 'server_cpu_us_per_call'), 3)} |")
        lines.append(line + f" {GRPC_GO[method]} | {GUIDE_PYTHON_ISSUE[method]} |")
    return "\n".join(lines)


def in_flight_series(args, servers):
    series = {s.name: [] for s in servers}
    for level in args.levels:
        for server in servers:
            log(f"AtIndex with {level} in flight on {server.name}")
            result = bench(args.bin, server, "--method", "AtIndex",
                           "--channels", args.channels, "--in-flight", level,
                           "--warmup", args.series_warmup, "--duration", args.series_duration)
            series[server.name].append(result)
    return series


def series_table(series, levels):
    lines = ["| calls in flight | " + " | ".join(f"{n} calls/s | {n} p99 us" for n in series) + " |",
             "|---:|" + "---:|---:|" * len(series)]
    for i, level in enumerate(levels):
        cells = []
        for runs in series.values():
            cells += [fmt(runs[i]["calls_per_s"]), fmt(runs[i]["latency_us_p99"])]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(series, levels, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    labels = {"rust": "Rust server (grpcio 0.13)", "python": "guide's Python server (grpcio, 10 workers)",
              "grpc-go": "grpc-go 1.33 server (bench/go)", "tonic": "tonic 0.14 server (bench/tonic)"}
    for name, runs in series.items():
        ax.plot(levels, [r["calls_per_s"] for r in runs], marker="o", label=labels.get(name, name))
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels)
    ax.set_xticklabels([str(level) for level in levels])
    ax.set_yscale("log")
    values = [r["calls_per_s"] for runs in series.values() for r in runs]
    ticks = [t for t in (100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000)
             if min(values) / 2 <= t <= max(values) * 2]
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for runs in series.values():
        for level, r in zip(levels, runs):
            ax.annotate(f"{r['calls_per_s']:,.0f}", (level, r["calls_per_s"]),
                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("calls in flight (2 channels)")
    ax.set_ylabel("AtIndex(46) calls/s (log)")
    ax.set_title("AtIndex calls/s vs calls in flight, 2 cores, generator on the same host")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return True


def ascii_chart(series, levels, width=50):
    top = max(r["calls_per_s"] for runs in series.values() for r in runs) or 1
    lines = []
    for i, level in enumerate(levels):
        for name, runs in series.items():
            value = runs[i]["calls_per_s"]
            bar = "#" * max(1, round(width * value / top))
            lines.append(f"{level:>4} {name:<7} {bar} {value:,.0f}")
    return "\n".join(lines)


def h2load_matrix(args, servers):
    """--h2load-reps runs per method and server, interleaved (rep by rep,
    method by method, server by server)."""
    cells = {m: {s.name: [] for s in servers} for m in METHODS}
    for rep in range(args.h2load_reps):
        for method in METHODS:
            for server in servers:
                log(f"h2load rep {rep + 1}/{args.h2load_reps} {method} on {server.name}")
                cells[method][server.name].append(run_h2load(
                    server.address, method, connections=args.h2load_connections,
                    streams=args.h2load_streams, warmup_s=args.warmup, duration_s=args.duration,
                    work_dir=args.out, server_pid=server.pid))
    return cells


def h2load_table(cells, args):
    """Medians of the runs of each cell: calls/s and server CPU per call,
    each server side by side, then the Rust / peer ratios of both."""
    servers = list(next(iter(cells.values())))
    peers = [s for s in servers if s in PEERS]
    header = "| method |"
    for name in servers:
        header += f" {TITLES[name]} calls/s | {TITLES[name]} server CPU us/call |"
    for peer in peers:
        header += f" Rust / {TITLES[peer]} calls/s | Rust / {TITLES[peer]} server CPU per call |"
    lines = [header + " grpc-go (issue) | Python (issue) | non-200 |",
             "|---|" + "---:|---:|" * (len(servers) + len(peers)) + "---:|---:|---:|"]
    for method, by in cells.items():
        line = f"| {method} |"
        for name in servers:
            line += f" {fmt(med(by[name], 'calls_per_s'))} | {fmt(med(by[name], 'server_cpu_us_per_call'), 1)} |"
        rust = by["rust"]
        for peer in peers:
            line += (f" {ratio(med(rust, 'calls_per_s'), med(by[peer], 'calls_per_s'))} "
                     f"| {ratio(med(rust, 'server_cpu_us_per_call'), med(by[peer], 'server_cpu_us_per_call'), 3)} |")
        errors = sum(r["errors"] for runs in by.values() for r in runs)
        lines.append(line + f" {GRPC_GO[method]} | {GUIDE_PYTHON_ISSUE[method]} | {errors} |")
    if args.h2load_reps > 1:
        lines.append("")
        lines.append("Individual runs, calls/s (server CPU us/call):")
        lines.append("")
        for method, by in cells.items():
            runs = "; ".join(
                f"{TITLES[name]} " + " / ".join(
                    f"{fmt(r['calls_per_s'])} ({fmt(r['server_cpu_us_per_call'], 1)})" for r in by[name])
                for name in servers)
            lines.append(f"- {method}: {runs}")
    return "\n".join(lines)


def hold(args, name, argv, count, timeout):
    # The calls are spread over enough connections for all of them to be
    # open at once: each server must allow --hold-calls-per-channel calls
    # per connection (the Rust server is started with that many).
    channels = max(args.channels, -(-count // args.hold_calls_per_channel))
    server = start_labelled_server(name, argv)
    try:
        time.sleep(1)
        log(f"holding {count} StreamSequence calls over {channels} channels on {server.name}")
        return bench(args.bin, server, "--hold-streams", count, "--channels", channels,
                     "--hold-timeout", timeout, "--settle", args.settle)
    finally:
        server.stop()


def hold_table(holds):
    lines = ["| server | calls asked | connections | served at once | RSS before kB | RSS all open kB "
             "| RSS after close kB | kB per served call | kB per open call |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in holds:
        lines.append(
            f"| {name} | {r['asked']:,} | {r['channels']} | {r['served']:,} | {fmt(r['server_rss_before_kb'])} "
            f"| {fmt(r['server_rss_open_kb'])} | {fmt(r['server_rss_after_kb'])} "
            f"| {fmt(r['server_kb_per_served_call'], 2)} | {fmt(r['server_kb_per_open_call'], 2)} |")
    return "\n".join(lines)


def startup(args, starts=10):
    times, idle = [], []
    for _ in range(starts):
        server = start_labelled_server("rust", rust_server_argv(bin_dir=args.bin))
        times.append(server.ready_seconds * 1000)
        time.sleep(1)
        idle.append(resident_kb(server))
        server.stop()
    return {"ready_ms": times, "idle_rss_kb": idle}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(ROOT, "target", "release"),
                        help="directory with the server and bench binaries")
    parser.add_argument("--python", default=sys.executable,
                        help="Python with grpcio for the guide's server")
    parser.add_argument("--python-server", default=str(PYTHON_DIR / "server.py"))
    parser.add_argument("--no-python", action="store_true",
                        help="leave out the guide's Python server (with --h2load-only: Rust against grpc-go and tonic)")
    parser.add_argument("--go-server", default=str(GO_SERVER),
                        help="the grpc-go server (make bench-go); measured if it exists")
    parser.add_argument("--no-go", action="store_true", help="leave out the grpc-go server even if it is built")
    parser.add_argument("--tonic-server", default=str(TONIC_SERVER),
                        help="the tonic server (make bench, make bench-tonic); measured if it exists")
    parser.add_argument("--no-tonic", action="store_true", help="leave out the tonic server even if it is built")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 64, 512])
    parser.add_argument("--series-warmup", type=float, default=0.5)
    parser.add_argument("--series-duration", type=float, default=2.0)
    parser.add_argument("--rust-streams", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--python-streams", type=int, default=10,
                        help="its pool of 10 workers serves 10 StreamSequence calls at once")
    parser.add_argument("--go-streams", type=int, nargs="*", default=[10000],
                        help="held StreamSequence calls on the grpc-go server (none: skip)")
    parser.add_argument("--tonic-streams", type=int, nargs="*", default=[10000],
                        help="held StreamSequence calls on the tonic server (none: skip)")
    parser.add_argument("--hold-calls-per-channel", type=int, default=250,
                        help="held calls per connection (the Rust server is started allowing as many; "
                             "the grpc-go and tonic servers allow 256)")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--h2load-connections", type=int, default=2)
    parser.add_argument("--h2load-streams", type=int, default=16)
    parser.add_argument("--h2load-reps", type=int, default=1,
                        help="h2load runs per method and server (interleaved; the table shows medians)")
    parser.add_argument("--no-h2load", action="store_true", help="skip the h2load cross-check")
    parser.add_argument("--h2load-only", action="store_true",
                        help="run only the h2load cross-check (no load generator, series, held calls or start-up)")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    parser.add_argument("--png", default=os.path.join(ROOT, "bench", "inflight.png"))
    parser.add_argument("--plot-only", metavar="RESULTS_JSON",
                        help="only redraw --png from a results.json of an earlier run")
    args = parser.parse_args()
    if args.plot_only:
        with open(args.plot_only) as f:
            series = json.load(f)["in_flight_series"]
        levels = [r["in_flight"] for r in next(iter(series.values()))]
        return 0 if plot(series, levels, args.png) else 1
    os.makedirs(args.out, exist_ok=True)
    has_h2load = shutil.which("h2load") is not None and not args.no_h2load
    if args.h2load_only and not has_h2load:
        log("--h2load-only, but h2load is not installed (apt-get install nghttp2-client) or --no-h2load given")
        return 2
    with_go = not args.no_go and os.access(args.go_server, os.X_OK)
    if not with_go and not args.no_go:
        log(f"no grpc-go server at {args.go_server} (make bench-go builds it): leaving grpc-go out")
    with_tonic = not args.no_tonic and os.access(args.tonic_server, os.X_OK)
    if not with_tonic and not args.no_tonic:
        log(f"no tonic server at {args.tonic_server} (make bench-tonic builds it): leaving tonic out")
    with_python = not args.no_python
    full = not args.h2load_only

    begun = time.time()
    load_before = load_average()
    if float(load_before.split()[0]) > 1.0:
        log(f"the machine is busy (load average {load_before}): expect noisy numbers")
    sampler = LoadSampler()
    if with_python:
        generate_stubs(args.python)

    start = None
    if full:
        log("Rust server: exec to 'listening on', idle RSS (10 starts)")
        start = startup(args)

    servers = [start_labelled_server("rust", rust_server_argv(bin_dir=args.bin))]
    cells = series = h2 = None
    idle_kb = {}
    try:
        if with_python:
            servers.append(start_labelled_server("python", python_server_argv(args.python, args.python_server)))
        if with_go:
            servers.append(start_labelled_server("grpc-go", go_server_argv(args.go_server)))
        if with_tonic:
            servers.append(start_labelled_server("tonic", tonic_server_argv(args.tonic_server)))
        time.sleep(1)
        idle_kb = {s.name: resident_kb(s) for s in servers if s.name != "rust"}
        if full:
            cells = load_matrix(args, servers)
            series = in_flight_series(args, servers)
        if not has_h2load:
            log("h2load not found (apt-get install nghttp2-client): skipping the cross-check")
        h2 = h2load_matrix(args, servers) if has_h2load else None
    finally:
        for server in servers:
            server.stop()

    holds = []
    if full:
        rust_argv = rust_server_argv("--max-concurrent-streams", str(args.hold_calls_per_channel),
                                     bin_dir=args.bin)
        holds = [("rust", hold(args, "rust", rust_argv, n, 30)) for n in args.rust_streams]
        if with_python:
            python_argv = python_server_argv(args.python, args.python_server)
            holds.append(("python", hold(args, "python", python_argv, args.python_streams, 10)))
        if with_go:
            go_argv = go_server_argv(args.go_server)
            holds += [("grpc-go", hold(args, "grpc-go", go_argv, n, 30)) for n in args.go_streams]
        if with_tonic:
            tonic_argv = tonic_server_argv(args.tonic_server)
            holds += [("tonic", hold(args, "tonic", tonic_argv, n, 30)) for n in args.tonic_streams]
    load_after = load_average()
    loads = sampler.stop()

    plotted = plot(series, args.levels, args.png) if series else False
    report = []
    report.append(f"machine: {os.cpu_count()} cores; load average before {load_before}, after {load_after}; "
                  f"1-min load during the run: median {statistics.median(loads):.2f}, max {max(loads):.2f}")
    report.append("servers: " + ", ".join(s.name for s in servers))
    if full:
        report.append(f"load runs: {args.channels} channels x {args.in_flight} calls in flight, "
                      f"{args.warmup:g} s warm-up + {args.duration:g} s window, {args.reps} runs per cell")
        report.append("")
        report.append(matrix_table(cells, args.reps))
        report.append("")
    if h2:
        runs = "one run" if args.h2load_reps == 1 else f"medians of {args.h2load_reps} runs, interleaved"
        report.append(f"Cross-check with the issue's tool, h2load {args.h2load_connections} connections x "
                      f"{args.h2load_streams} streams, {max(1, round(args.warmup))} s warm-up + "
                      f"{max(1, round(args.duration))} s, {runs} "
                      "(checks HTTP 200 only; StreamSequence's 4, 2, 1 sent in one body; "
                      "server CPU = utime + stime of the server over the window):")
        report.append("")
        report.append(h2load_table(h2, args))
        report.append("")
    if full:
        report.append("AtIndex calls/s vs calls in flight "
                      f"({args.series_warmup:g} s warm-up + {args.series_duration:g} s window, one run each):")
        report.append("")
        report.append(series_table(series, args.levels))
        report.append("")
        if plotted:
            report.append(f"plot: {os.path.relpath(args.png, ROOT)}")
        else:
            report.append("```\n" + ascii_chart(series, args.levels) + "\n```")
        report.append("")
        report.append("Held StreamSequence calls (fresh servers; each call sent 1 and got its reply):")
        report.append("")
        report.append(hold_table(holds))
        report.append("")
        ready = start["ready_ms"]
        idle = [kb for kb in start["idle_rss_kb"] if kb is not None]
        others = "; ".join(f"{TITLES[name]} server idle RSS (1 s after start): {fmt(kb)} kB"
                           for name, kb in idle_kb.items())
        report.append(f"Rust server, exec to 'listening on': median {statistics.median(ready):.1f} ms "
                      f"(min {min(ready):.1f}, max {max(ready):.1f}, {len(ready)} starts); "
                      f"idle RSS median {statistics.median(idle):,.0f} kB ({statistics.median(idle) / 1024:.1f} MiB)"
                      + (f"; {others}" if others else ""))
    report.append(f"total time: {time.time() - begun:.0f} s")
    text = "\n".join(report)
    print(text)

    name = "results-h2load" if args.h2load_only else "results"
    with open(os.path.join(args.out, f"{name}.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump({"load_before": load_before, "load_after": load_after, "load_samples": loads,
                   "servers": [s.name for s in servers], "matrix": cells,
                   "in_flight_series": series, "h2load": h2, "holds": holds, "startup": start,
                   "idle_rss_kb": idle_kb, "python_idle_rss_kb": idle_kb.get("python")}, f, indent=1)
    errors = 0
    if cells:
        errors += sum(r["errors"] for by in cells.values() for runs in by.values() for r in runs)
    if series:
        errors += sum(r["errors"] for runs in series.values() for r in runs)
    if errors:
        log(f"{errors} calls failed or returned wrong values: see the errors column")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
