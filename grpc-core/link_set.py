#!/usr/bin/env python3
"""Derives grpc-core/link-set.txt: the files of the gRPC C core that the
project's binaries link, which is all build.py compiles by default.

1. `build.py` with FIB_GRPC_CORE_EVERY_FILE=1: every file of the
   release, with the default flags (xDS and RLS out of the plugin registry). Cached like any build.
2. Every target cargo links (the binaries, the tests and doctests, the
   load generator) is built against that library in a scratch target
   directory, through a linker that also prints which archive members
   the link pulls in (ld --trace).
3. Those members, mapped back to their sources, are the link set.

Run it after moving to another release (docs/core.md), or when a
change makes a link fail with an undefined symbol of the core: the set is
only what today's code uses. It takes one full compile of the core when the
every-file build is not cached, and one build of the crates.

With --within-current, step 1 is today's default build instead (the
current link set, today's patches applied): enough when a change can only
drop files from the set, such as a patch that compiles code out, and it
takes no full compile (build.py starts a patched build from a sibling's
objects). A link that fails then needs the every-file run.

Standard library only, like build.py.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import build  # noqa: E402  (build.py beside this script)

# An archive member the link loaded: from libgrpc_core.a itself, or from
# grpcio-sys's rlib, into which rustc bundles that static library.
MEMBER = re.compile(r"(?:libgrpc_core\.a|libgrpcio_sys-[0-9a-f]+\.rlib)\(([^)]+\.o)\)")
# A member that is one of the core's sources (grpcio-sys's own are not).
SOURCE_OBJECT = re.compile(r"\.(c|cc|cpp|S|asm)\.o$")


def core_build(build_env):
    """The directory of the build to link against, built if need be."""
    result = subprocess.run(
        [sys.executable, str(HERE / "build.py")],
        stdout=subprocess.PIPE, text=True, check=True, env=build_env,
    )
    return Path(result.stdout.strip().splitlines()[-1])


def linked_members(scratch, build_env):
    """The archive members any link of the workspace pulls in, linked
    against the core that `build_env` selects."""
    trace = scratch / "trace.txt"
    trace.unlink(missing_ok=True)
    linker = scratch / "tracing-cc"
    # ld's --trace prints each input file it loads, archive members by name.
    linker.write_text(
        '#!/bin/sh\nexec cc "$@" -Wl,--trace >> "$LINK_SET_TRACE"\n'
    )
    linker.chmod(0o755)
    env = dict(
        build_env,
        LINK_SET_TRACE=str(trace),
        CARGO_TARGET_DIR=str(scratch / "target"),
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=str(linker),
    )
    cargo = os.environ.get("CARGO", "cargo")
    # The workspace's own crates are built again, so every target is linked
    # (and traced) even where the scratch directory has it already; the
    # doctests are linked (and run) by `cargo test --doc` only.
    for command in (
        [cargo, "clean", "--release", "-p", "fibonacci-grpc", "-p", "fibonacci-bench"],
        [cargo, "build", "--release", "--locked", "--workspace", "--all-targets"],
        [cargo, "test", "--release", "--locked", "--workspace", "--doc"],
    ):
        print("link-set:", " ".join(command), flush=True)
        subprocess.run(command, cwd=ROOT, env=env, check=True)
    members = {m for m in MEMBER.findall(trace.read_text()) if SOURCE_OBJECT.search(m)}
    if not members:
        sys.exit("link-set: no link pulled anything from libgrpc_core.a: is the linker traced?")
    return members


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--within-current",
        action="store_true",
        help="link against today's default build, not every file (a change that only drops files)",
    )
    args = parser.parse_args()
    build_env = dict(os.environ)
    build_env.pop("FIB_GRPC_CORE_XDS", None)
    if not args.within_current:
        build_env["FIB_GRPC_CORE_EVERY_FILE"] = "1"
    release, sha256 = build.read_release()
    core = core_build(build_env)
    sources = build.every_source(core / "src")
    by_object = {build.object_name(source): source for source in sources}
    scratch = ROOT / "target" / "link-set"
    scratch.mkdir(parents=True, exist_ok=True)
    members = linked_members(scratch, build_env)
    unknown = sorted(members - set(by_object))
    if unknown:
        sys.exit(f"link-set: members that are no source of the release: {unknown[:5]}")
    linked = sorted(by_object[member] for member in members)
    header = f"""\
# The files of the gRPC C core that the project's binaries link: what
# grpc-core/build.py compiles by default. Derived, not edited: run
# `python3 grpc-core/link_set.py` after moving to another release, or when
# a link fails with an undefined symbol of the core.
# release {release} {sha256}
# {len(linked)} of the release's {len(sources)} files
"""
    (HERE / "link-set.txt").write_text(header + "".join(f"{s}\n" for s in linked))
    print(f"link-set: {len(linked)} of {len(sources)} files linked: grpc-core/link-set.txt")


if __name__ == "__main__":
    main()
