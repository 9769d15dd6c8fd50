#!/usr/bin/env python3
"""Where one call's instructions go, by part of the stack: the C core's
call and filter path, its HTTP/2 writer and reader, completion queues,
locks and wake-ups, the EventEngine, grpcio's Rust side, this project's
code, malloc.

Counts with bench/callgrind.sh, which keeps its dumps for it: the server
under callgrind twice, for N1 and N2 calls from h2load (1 connection, 1
stream), the counts dumped as soon as h2load is done, and the difference
of the two dumps divided by N2 - N1. Here every function's *self* cost is kept from each dump (the
cost lines of its own `fn=` block, not the inclusive `calls=` lines that
follow a call), so the parts add up to the whole; a line below the
table checks that against the dumps' totals, which are what
bench/callgrind.sh prints. Then malloc's cost by the part that calls it.

With --perf SECONDS, the same split of the server's CPU time under load
instead (h2load, 2 connections x 16 streams, as `make bench`): `perf
record -e cpu-clock` of the server's threads, the kernel included (this
VM has no hardware counters), each sample's function put in the same
parts, the kernel's split into context switches and wake-ups, TCP,
epoll and the rest; with the server's CPU time per call (/proc) to turn
shares into microseconds, and the split by thread.

A function of the C core belongs to the source file whose object defines
it (`nm` of the cached libgrpc_core.a: the binaries carry no debug
information), and a part is a list of source directories and files; Rust
functions go by their crate, libc's by name.

    bench/profile_split.py GetSequence 46 200 1000
    bench/profile_split.py --server target/release/server StreamSequence 4 2 1 200 1000
    bench/profile_split.py --perf 5 GetSequence

Needs valgrind and h2load (Debian: valgrind, nghttp2-client), and perf
for --perf (Debian: linux-perf).
"""

import argparse
import os
import collections
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "interop"))
sys.path.insert(0, str(ROOT / "grpc-core"))
import build  # noqa: E402  (grpc-core/build.py: the cached core and its object names)
from harness.servers import Server  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from h2load import H2LOAD_VALUES, run_h2load  # noqa: E402  (bench/h2load.py)

METHODS = ("AtIndex", "GetSequence", "SumIndicies", "StreamSequence")

# The C core's parts, by the source paths of the objects that define a
# function: the first part with a matching prefix wins.
CORE_PARTS = [
    ("core: completion queues", ("src/core/lib/surface/completion_queue",)),
    ("core: HTTP/2 writer (frames out, HPACK encoding)", tuple(
        f"src/core/ext/transport/chttp2/transport/{name}"
        for name in ("writing", "hpack_encoder", "varint", "write_size_policy")
    )),
    ("core: HTTP/2 reader (parsing, HPACK decoding)", tuple(
        f"src/core/ext/transport/chttp2/transport/{name}"
        for name in ("parsing", "hpack_parse", "huffsyms", "frame_")
    )),
    ("core: HTTP/2 transport (streams, flow control, ops)", (
        "src/core/ext/transport/chttp2/", "src/core/lib/transport/",
    )),
    ("core: ExecCtx and combiners (the call stack's scheduling)", (
        "src/core/lib/iomgr/exec_ctx", "src/core/lib/iomgr/combiner",
        "src/core/lib/iomgr/call_combiner", "src/core/lib/iomgr/closure",
    )),
    ("core: EventEngine (sockets, polling, its threads, timers)", (
        "src/core/lib/event_engine/", "src/core/lib/iomgr/",
    )),
    ("locks and wake-ups (absl, gpr, pthread)", (
        "third_party/abseil-cpp/absl/synchronization/",
        "third_party/abseil-cpp/absl/base/internal/spinlock",
        "src/core/util/sync", "src/core/lib/gprpp/sync",
    )),
    ("core: the promise-filter adapter (legacy call stack to promise filters)", (
        "src/core/lib/channel/promise_based_filter",
    )),
    ("core: filters (fused server filters, compression, HTTP, max age)", (
        "src/core/filter/", "src/core/ext/filters/", "src/core/server/server_call_tracer",
    )),
    ("core: the batch API and its call (call.cc, byte buffers, metadata)", (
        "src/core/lib/surface/", "src/core/call/", "src/core/lib/channel/",
    )),
    ("core: server (requested calls, the server's own filter)", ("src/core/server/",)),
    ("core: slices, promises, arenas, status", (
        "src/core/lib/slice/", "src/core/lib/promise/", "src/core/lib/resource_quota/",
        "src/core/util/", "src/core/lib/debug/", "src/core/telemetry/", "src/core/channelz/",
        "src/core/lib/compression/",
    )),
    ("core: the rest (abseil, upb, other)", ("",)),
]

# Rust functions, by the crate their path starts with.
RUST_PARTS = [
    ("this project (fibonacci_grpc)", ("fibonacci_grpc",)),
    ("grpcio (Rust) and grpcio-sys's C wrap", ("grpcio", "grpcio_sys")),
    ("futures", ("futures", "futures_util", "futures_core", "futures_channel",
                 "futures_executor", "futures_task")),
    ("protobuf", ("protobuf",)),
    ("Rust std", ("std", "core", "alloc", "hashbrown")),
]

MALLOC = re.compile(
    r"^(malloc|free|cfree|calloc|realloc|_int_malloc|_int_free\w*|_int_realloc|"
    r"malloc_consolidate|unlink_chunk\S*|tcache_\w+|__libc_(malloc|free|calloc|realloc)|"
    r"(__rustc::)?(__rust_\w+|__rdl_\w+|__rg_\w+)|"
    r"malloc_printerr|arena_get2\S*|sysmalloc|systrim\S*|_int_memalign|"
    r"operator new|operator delete|gpr_malloc|gpr_free|gpr_zalloc|gpr_realloc)\b"
)
# The kernel's functions, by what the server asked of it.
KERNEL_PARTS = [
    # Without call graphs, a wake-up's cost shows where the woken thread's
    # switch ends and where interrupts come back on (a spinlock's unlock):
    # on a VM that is also where pending interrupts are taken.
    ("kernel: context switches, wake-ups, interrupts", re.compile(
        r"futex|schedule|switch|wake|sched|pick_next|enqueue|dequeue|update_curr|"
        r"ttwu|select_task|idle|hrtimer|finish_task|prepare_task|__switch_to|"
        r"load_balance|newidle|rcu|cpuacct|psi_|_raw_spin_unlock_irq|irqentry|"
        r"irq_exit|sysvec|__irq")),
    ("kernel: epoll", re.compile(r"ep_|epoll|eventfd")),
    ("kernel: TCP over loopback", re.compile(
        r"tcp|sock|skb|ip_|ipv6|ip6|inet|net_|netif|__dev|dev_|loopback|"
        r"sendmsg|recvmsg|_copy_|copy_user|copyin|copyout|iov_|__napi|"
        r"do_softirq|__softirq|__local_bh|kmem_cache|kfree|__alloc|page_|"
        r"memcg|__kmalloc|nf_|lock_sock|release_sock|csum|fib")),
]
KERNEL_OTHER = "kernel: syscall entry and exit, clocks, other"

LOCKS = re.compile(r"^(pthread_|__pthread_|__futex|futex_|lll_|__lll_|syscall\b|__GI___lll)")


def is_malloc(fn):
    return bool(MALLOC.match(re.sub(r"\(.*", "", without_clone_suffix(fn))))


def parse_self_costs(dump):
    """{(object, function): self instructions}, {(object, function): what
    its calls into malloc and free cost, inclusive} for callers outside
    malloc, and the dump's total."""
    names = {"ob": {}, "fn": {}}
    costs = collections.Counter()
    malloc_by_caller = collections.Counter()
    obj = fn = callee = None
    skip_next_cost = False
    total = None
    with open(dump) as f:
        for line in f:
            if not line or line == "\n":
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                if skip_next_cost:  # a call's inclusive cost, not fn's own
                    skip_next_cost = False
                    if is_malloc(callee) and not is_malloc(fn):
                        fields = line.split()
                        if len(fields) > 1:
                            malloc_by_caller[(obj, fn)] += int(fields[1])
                    continue
                fields = line.split()
                if len(fields) > 1:
                    costs[(obj, fn)] += int(fields[1])
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key in ("ob", "fn", "cob", "cfn"):
                table = names["ob" if key in ("ob", "cob") else "fn"]
                match = re.match(r"\((\d+)\)(?: (.*))?$", value)
                if match:
                    if match.group(2) is not None:
                        table[match.group(1)] = match.group(2)
                    value = table[match.group(1)]
                if key == "ob":
                    obj = value
                elif key == "fn":
                    fn = value
                elif key == "cfn":
                    callee = value
            elif key == "calls":
                skip_next_cost = True
            elif line.startswith("summary:"):
                total = int(line.split(":", 1)[1].split()[0])
    return costs, malloc_by_caller, total


def core_sources_by_symbol(core_dir):
    """{demangled symbol: source path} for every function libgrpc_core.a
    defines (the first object that defines it, for inline functions many do)."""
    sources = build.every_source(core_dir / "src")
    by_object = {build.object_name(source): source for source in sources}
    listing = subprocess.run(
        ["nm", "-C", "--defined-only", str(core_dir / "lib" / "libgrpc_core.a")],
        capture_output=True, text=True, check=True,
    ).stdout
    symbols = {}
    source = None
    for line in listing.splitlines():
        if line.endswith(".o:"):
            source = by_object.get(line[:-1], "")
            continue
        fields = line.split(" ", 2)
        if len(fields) == 3 and fields[1].lower() in "tw":
            symbols.setdefault(fields[2], source)
    return symbols


def without_clone_suffix(name):
    """A function's name without gcc's `[clone .isra.0]` suffixes and
    callgrind's recursion marks (`'2`)."""
    name = re.sub(r"'\d+$", "", name)
    return re.sub(r" \[clone [^\]]*\]", "", name)


def rust_crate(name):
    """The crate a Rust function's path starts with, or None."""
    match = re.match(r"<*&?(?:mut |dyn )?([a-z_][a-z0-9_]*)::", name)
    return match.group(1) if match else None


def part_of(obj, fn, core_symbols, core_by_bare_name):
    name = without_clone_suffix(fn)
    bare = re.sub(r"\(.*", "", name)
    if MALLOC.match(bare):
        return "malloc and free"
    if "libc.so" in (obj or "") or "libpthread" in (obj or ""):
        return "locks and wake-ups (absl, gpr, pthread)" if LOCKS.match(bare) else "libc (memcpy, syscalls' user side)"
    if "ld-linux" in (obj or "") or "valgrind" in (obj or "") or "vgpreload" in (obj or ""):
        return "loader, valgrind"
    if bare.startswith("grpcwrap"):
        return "grpcio (Rust) and grpcio-sys's C wrap"
    source = core_symbols.get(name)
    if source is None:
        source = core_symbols.get(fn) or core_by_bare_name.get(bare)
    if source is not None:
        for part, prefixes in CORE_PARTS:
            if source.startswith(prefixes):
                return part
    crate = rust_crate(name)
    for part, crates in RUST_PARTS:
        if crate in crates:
            return part
    return "Rust: other crates (prometheus, log, ...)" if crate else "unattributed"


def perf_split(args, classify):
    """The server's CPU under h2load, split by part and by thread."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        server = Server([args.server, "--host", "127.0.0.1", "--port", "0",
                         *args.server_args.split()]).require_started()
        try:
            data = work / "perf.data"
            warmup = 1
            runs = {}
            load = threading.Thread(target=lambda: runs.update(run_h2load(
                server.address, args.method, connections=2, streams=16, warmup_s=warmup,
                duration_s=args.perf, work_dir=work, server_pid=server.pid)))
            load.start()
            time.sleep(warmup)  # perf records h2load's measured window
            recorded = subprocess.run(
                ["perf", "record", "-q", "-e", "cpu-clock", "-p", str(server.pid), "-o", str(data),
                 "--", "sleep", str(args.perf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            load.join()
            if recorded.returncode != 0:
                sys.exit(f"profile_split: perf record failed: {recorded.stderr.strip()}")
            if not runs:
                sys.exit("profile_split: h2load failed")
        finally:
            server.stop()
        report = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "--no-children",
             "--sort", "comm,dso,sym", "--percent-limit", "0", "-g", "none"],
            capture_output=True, text=True, check=True,
        ).stdout
    parts = collections.Counter()
    threads = collections.Counter()
    symbols = collections.Counter()
    sample = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")
    for line in report.splitlines():
        match = sample.match(line)
        if not match:
            continue
        share, thread, dso, level, symbol = match.groups()
        share = float(share)
        threads[re.sub(r"\d+$", "N", thread)] += share
        if level == "k":
            part = next((name for name, pattern in KERNEL_PARTS if pattern.search(symbol)), KERNEL_OTHER)
        else:
            part = classify(dso, symbol)
        parts[part] += share
        symbols[(part, symbol)] += share
    per_call = runs["server_cpu_us_per_call"]
    print(f"{args.method}({', '.join(map(str, H2LOAD_VALUES[args.method]))}): the server's CPU "
          f"under h2load (2 x 16, {args.perf} s), by part: {runs['calls_per_s']:,.0f} calls/s, "
          f"{per_call:.1f} us of CPU per call")
    print()
    print("| part | share of samples | us per call |")
    print("|---|---:|---:|")
    whole = sum(parts.values())
    for part, share in parts.most_common():
        print(f"| {part} | {100 * share / whole:.1f}% | {per_call * share / whole:.1f} |")
    print()
    print("| thread | share of samples |")
    print("|---|---:|")
    for thread, share in threads.most_common():
        print(f"| {thread} | {100 * share / whole:.1f}% |")
    if args.top:
        print()
        for (part, symbol), share in symbols.most_common(args.top):
            print(f"{100 * share / whole:6.2f}%  {part[:30]:30}  {symbol[:110]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=str(ROOT / "target" / "release" / "server"))
    parser.add_argument("--server-args", default="", help="flags for the server, one string")
    parser.add_argument("--top", type=int, default=0, help="also list the N costliest functions")
    parser.add_argument("--perf", type=int, metavar="SECONDS",
                        help="split the CPU time under load (perf) instead of instructions")
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("values", type=int, nargs="*",
                        help="the request's values, then N1 and N2 (none with --perf: h2load's bodies)")
    args = parser.parse_args()
    if args.perf is None and len(args.values) < 3:
        parser.error("give the request's values, then N1 and N2")
    core_dir = Path(subprocess.run(
        [sys.executable, str(ROOT / "grpc-core" / "build.py"), "--locate"],
        capture_output=True, text=True, check=True).stdout.strip())
    core_symbols = core_sources_by_symbol(core_dir)
    core_by_bare_name = {}
    for symbol, source in core_symbols.items():
        core_by_bare_name.setdefault(re.sub(r"\(.*", "", without_clone_suffix(symbol)), source)
    if args.perf is not None:
        perf_split(args, lambda dso, symbol: part_of(dso, symbol, core_symbols, core_by_bare_name))
        return
    *values, n1, n2 = args.values

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        # bench/callgrind.sh runs the server and the load, and keeps its dumps.
        counted = subprocess.run(
            [str(ROOT / "bench" / "callgrind.sh"), args.server, args.method,
             " ".join(map(str, values)), str(n1), str(n2)],
            env=dict(os.environ, KEEP_DUMPS=str(work), SERVER_ARGS=args.server_args),
            capture_output=True, text=True,
        )
        if counted.returncode != 0:
            sys.exit(f"profile_split: bench/callgrind.sh failed: {counted.stderr.strip()}")
        first, first_malloc, first_total = parse_self_costs(work / f"callgrind.{n1}.out")
        second, second_malloc, second_total = parse_self_costs(work / f"callgrind.{n2}.out")

    calls = n2 - n1
    per_function = {key: (second[key] - first.get(key, 0)) / calls for key in second}
    parts = collections.Counter()
    for (obj, fn), cost in per_function.items():
        parts[part_of(obj, fn, core_symbols, core_by_bare_name)] += cost
    whole = sum(parts.values())
    print(f"{args.method}({', '.join(map(str, values))}): instructions per call, by part "
          f"({n1} and {n2} calls, the difference)")
    print()
    print("| part | instructions per call | share |")
    print("|---|---:|---:|")
    for part, cost in parts.most_common():
        print(f"| {part} | {cost:,.0f} | {100 * cost / whole:.1f}% |")
    print(f"| all | {whole:,.0f} | 100% |")
    print()
    print(f"check: the dumps' totals give {(second_total - first_total) / calls:,.0f} per call")
    callers = collections.Counter()
    for key, cost in second_malloc.items():
        callers[part_of(*key, core_symbols, core_by_bare_name)] += (cost - first_malloc.get(key, 0)) / calls
    print()
    print("malloc and free, by the part that calls them (inclusive):")
    print()
    print("| caller | instructions per call |")
    print("|---|---:|")
    for part, cost in callers.most_common():
        if round(cost):
            print(f"| {part} | {cost:,.0f} |")
    if args.top:
        print()
        for (obj, fn), cost in sorted(per_function.items(), key=lambda item: -item[1])[:args.top]:
            print(f"{cost:10,.0f}  {part_of(obj, fn, core_symbols, core_by_bare_name)[:30]:30}  {fn[:110]}")


if __name__ == "__main__":
    main()
