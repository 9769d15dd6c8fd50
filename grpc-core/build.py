#!/usr/bin/env python3
"""Builds the gRPC C core of one grpcio release into a static library.

The release and the sha256 of its source distribution are in
grpc-core/release.txt. The source distribution (grpcio-X.Y.Z.tar.gz from
PyPI) carries the core, its third-party libraries (abseil, BoringSSL, upb,
re2, c-ares, zlib) and the list of files Python's grpcio compiles
(src/python/grpcio/grpc_core_dependencies.py); this script compiles that
list with the flags grpcio's setup.py uses on Linux, every core busy, and
archives the objects into libgrpc_core.a.

Patches: each `grpc-core/patches/*.patch` (a unified diff against the
source release, its reason in the text before the diff) is applied, in
name order, before anything is compiled; its diff is part of the cache key. A
build that differs from a complete one only by patches to `.c`/`.cc`
files (its own or this one's) starts from that build's objects and
compiles those files alone.

What is compiled: by default, only the files the project's binaries link
(grpc-core/link-set.txt, which grpc-core/link_set.py derives from the
final links), with xDS and RLS left out of grpc_init's plugin registry by
the core's own switches (GRPC_NO_XDS, GRPC_NO_RLS), as its grpc_unsecure
target does. With FIB_GRPC_CORE_XDS=1 (make core XDS=1): every file of the
release, xDS and RLS in, as Python's grpcio builds it. A link-set.txt
written for another release is not used: every file is compiled then,
with a warning to derive the set again.

Everything lives in a cache outside the work tree, one directory per key
(release, archive hash, flags, compiler, layout, file set, patches), so a
second clone on the same machine links against the same library without
compiling anything:

    $XDG_CACHE_HOME/fibonacci-grpc/grpc-core/<release>-<key>/
        src/     the unpacked source distribution (headers for grpc_wrap.cc)
        obj/     objects, while building (an interrupted build resumes)
        lib/libgrpc_core.a
        patches  the names of the patches applied, one a line
        patched-sources  the files those patches change, one a line
        base     the key of the same build without patches
        compile-seconds.tsv  CPU seconds per compiled file (user + system)
        release  the release, written last: the build is complete

Usage:
    build.py            build unless the cache has it; print its directory
    build.py --locate   print the directory if it is built, else fail

With FIB_GRPC_CORE_EVERY_FILE=1, every file of the release, compiled as by
default (without xDS and RLS): what link_set.py links against to find the
link set.

Standard library only: it runs before any virtualenv exists.
"""

import argparse
import concurrent.futures
import fcntl
import functools
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELEASE_FILE = HERE / "release.txt"
PATCH_DIR = HERE / "patches"
LINK_SET_FILE = HERE / "link-set.txt"
PYPI_SIMPLE = "https://pypi.org/simple/grpcio/"

# Bumped when what this script puts in the cache changes shape; editing the
# script otherwise keeps the cache (the flags below are in the key).
LAYOUT = 1

CC = os.environ.get("CC", "gcc")
CXX = os.environ.get("CXX", "g++")

# grpcio's setup.py on Linux (EXTRA_ENV_COMPILE_ARGS, DEFINE_MACROS), less
# what only a Python extension needs (PyMODINIT_FUNC, fork support for
# Python's multiprocessing), on top of CPython's own release flags (-O3
# -DNDEBUG), which setup.py builds with; -fPIC because Rust links
# position-independent executables; a section per function and per datum,
# so that the final link drops what the server never calls.
COMMON_FLAGS = [
    "-O3",
    "-DNDEBUG",
    "-fPIC",
    "-ffunction-sections",
    "-fdata-sections",
    "-fvisibility=hidden",
    "-fno-wrapv",
    "-w",
    "-DHAVE_CONFIG_H=1",
    "-D__STDC_FORMAT_MACROS",
    '-DGRPC_XDS_USER_AGENT_NAME_SUFFIX="Rust"',
    '-DGRPC_XDS_USER_AGENT_VERSION_SUFFIX="fibonacci-grpc"',
]
CXX_FLAGS = ["-std=c++17", "-fno-exceptions"]

# The core's own switches that leave xDS and RLS out of grpc_init's plugin
# registry (src/core/plugin_registry); nothing else in the release reads
# them, so with them the final link no longer pulls in xDS's files.
WITHOUT_XDS_FLAGS = ["-DGRPC_NO_XDS", "-DGRPC_NO_RLS"]

# gcc's garbage collector runs less often (it collects once the heap grew by
# 100% over at least 1 GiB): a tenth less CPU on the core's heavy C++
# files, with the same objects byte for byte (measured: BENCHMARKS.md,
# "The cold build"). Only the compiler's own bookkeeping changes.
GCC_SPEED_FLAGS = ["--param", "ggc-min-expand=100", "--param", "ggc-min-heapsize=1048576"]

# Precompiled headers, one for each of the three groups of C++ files below:
# the standard library's and the group's headers that many of its files
# include (at least PCH_SHARE of a sample of PCH_SAMPLE files, found with
# `g++ -M`), compiled once and given to each file of the group with
# -include, so the compiler loads them instead of parsing them again for
# every file. The files parse the same declarations and keep their own
# includes' order after them; the few that set macros before their first
# #include (e.g. _GNU_SOURCE) are compiled without it. About a fifth less
# CPU on those files (BENCHMARKS.md, "The cold build"); instructions per
# call are unchanged (bench/callgrind.sh).
PCH_GROUPS = {
    "src/core/": "core",
    "third_party/abseil-cpp/": "abseil",
    "third_party/boringssl-with-bazel/": "boringssl",
}
PCH_SHARE = 0.4
PCH_MIN_FILES = 20
PCH_SAMPLE = 64

# setup.py's include directories, relative to the source distribution.
INCLUDE_DIRS = [
    "include",
    ".",
    "third_party/abseil-cpp",
    "third_party/address_sorting/include",
    "third_party/cares/cares/include",
    "third_party/cares",
    "third_party/cares/cares",
    "third_party/cares/cares/src/lib/include",
    "third_party/cares/cares/src/lib",
    "third_party/cares/config_linux",
    "third_party/re2",
    "third_party/boringssl-with-bazel/include",
    "third_party/upb",
    "src/core/ext/upb-gen",
    "src/core/ext/upbdefs-gen",
    "third_party/utf8_range",
    "third_party/xxhash",
    "third_party/cel-c",
    "third_party/zlib",
]

# Compiled by setup.py beside the core list (abseil's log initialisation).
EXTRA_SOURCES = ["third_party/abseil-cpp/absl/log/initialize.cc"]


def with_xds():
    """Whether this build keeps xDS and RLS (FIB_GRPC_CORE_XDS=1)."""
    return os.environ.get("FIB_GRPC_CORE_XDS", "") not in ("", "0")


def compile_flags(compiler):
    """The flags every file gets from `compiler`, besides the language's."""
    flags = list(COMMON_FLAGS)
    if not with_xds():
        flags += WITHOUT_XDS_FLAGS
    if "Free Software Foundation" in compiler_banner(compiler):
        flags += GCC_SPEED_FLAGS
    return flags


def read_release():
    """(release, sha256) from release.txt: the one line that is not a comment."""
    for line in RELEASE_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            release, sha256 = line.split()
            return release, sha256
    sys.exit(f"{RELEASE_FILE}: no release line")


def cache_root():
    override = os.environ.get("FIB_GRPC_CORE_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fibonacci-grpc" / "grpc-core"


@functools.lru_cache(maxsize=None)
def compiler_banner(compiler):
    """What `compiler --version` prints (gcc names its maker there)."""
    try:
        return subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"grpc-core: cannot run the C compiler {compiler!r}: {error}")


def compiler_identity(compiler):
    return compiler_banner(compiler).splitlines()[0]


@functools.lru_cache(maxsize=None)
def read_link_set(release, sha256):
    """The files the binaries link, from link-set.txt, or None where the
    file is missing or was derived from another release."""
    if not LINK_SET_FILE.exists():
        return None
    lines = [line.strip() for line in LINK_SET_FILE.read_text().splitlines()]
    header = next((line for line in lines if line.startswith("# release ")), "")
    if header.split()[2:4] != [release, sha256]:
        print(
            f"grpc-core: {LINK_SET_FILE.name} is not for {release}: compiling every "
            f"file; run grpc-core/link_set.py to compile only what is linked",
            file=sys.stderr,
            flush=True,
        )
        return None
    return tuple(line for line in lines if line and not line.startswith("#"))


def every_file_wanted():
    """Whether link_set.py asked for every file (FIB_GRPC_CORE_EVERY_FILE=1:
    an environment variable, so grpcio-sys's build script finds that build
    too)."""
    return os.environ.get("FIB_GRPC_CORE_EVERY_FILE", "") not in ("", "0")


def file_set(release, sha256):
    """The files to compile: None for every file of the release, else the
    link set (a list of paths in the source distribution)."""
    if every_file_wanted() or with_xds():
        return None
    return read_link_set(release, sha256)


def patches():
    """The patches to apply, in the order to apply them."""
    return sorted(PATCH_DIR.glob("*.patch"))


def sources_patched():
    """Every file the patches change."""
    return {source for patch in patches() for source in patched_sources(patch)}


def patched_sources(patch):
    """The files a unified diff changes, relative to the source root."""
    prefix = "+++ b/"
    return [
        line[len(prefix):].strip()
        for line in patch.read_text().splitlines()
        if line.startswith(prefix)
    ]


def build_dir(release, sha256, with_patches=True):
    """The cache directory of this release, flags, compiler, file set and
    (unless `with_patches` is false) patches."""
    key = hashlib.sha256()
    files = file_set(release, sha256)
    parts = [
        release,
        sha256,
        " ".join(compile_flags(CC) + compile_flags(CXX) + CXX_FLAGS + INCLUDE_DIRS + EXTRA_SOURCES),
        CC,
        compiler_identity(CC),
        CXX,
        compiler_identity(CXX),
        str(LAYOUT),
        "every file" if files is None else "\n".join(files),
        f"precompiled headers: {sorted(PCH_GROUPS.items())} {PCH_SHARE} of {PCH_SAMPLE}",
    ]
    if with_patches:
        parts += [f"{patch.name}:{diff_sha256(patch)}" for patch in patches()]
    for part in parts:
        key.update(part.encode() + b"\0")
    return cache_root() / f"{release}-{key.hexdigest()[:16]}"


def download(release, sha256, into):
    """The verified source distribution, downloaded once per machine."""
    archive = into / f"grpcio-{release}.tar.gz"
    if archive.exists() and file_sha256(archive) == sha256:
        return archive
    request = urllib.request.Request(
        PYPI_SIMPLE, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        index = json.load(response)
    names = {f["filename"]: f["url"] for f in index["files"]}
    url = names.get(archive.name)
    if url is None:
        sys.exit(f"grpc-core: PyPI has no {archive.name}")
    print(f"grpc-core: downloading {url}", flush=True)
    partial = archive.with_suffix(".partial")
    with urllib.request.urlopen(url, timeout=300) as response, open(
        partial, "wb"
    ) as out:
        shutil.copyfileobj(response, out)
    got = file_sha256(partial)
    if got != sha256:
        partial.unlink()
        sys.exit(
            f"grpc-core: {archive.name} has sha256 {got}, "
            f"release.txt expects {sha256}"
        )
    partial.rename(archive)
    return archive


def diff_sha256(patch):
    """The sha256 of a patch's diff: the reason written above it is not
    part of the cache key, so rewording it compiles nothing."""
    text = patch.read_text()
    start = text.find("\n--- a/")
    return hashlib.sha256(text[start + 1:].encode()).hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack(archive, release, src):
    if (src / "include" / "grpc" / "grpc.h").exists():
        return
    staging = src.with_name("src.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        # The "data" filter (no links out, no devices) where this Python
        # has it (3.11.4 and later).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, filter="data")
        else:
            tar.extractall(staging)
    unpacked = staging / f"grpcio-{release}"
    for patch in patches():
        result = subprocess.run(
            ["git", "apply", "-p1", "--whitespace=nowarn", str(patch)],
            cwd=unpacked, capture_output=True, text=True,
        )
        if result.returncode != 0:
            sys.exit(f"grpc-core: {patch.name} does not apply to {release}:\n{result.stderr}")
    shutil.rmtree(src, ignore_errors=True)
    unpacked.rename(src)
    staging.rmdir()


def every_source(src):
    """The files grpcio's setup.py compiles on Linux, assembly included."""
    namespace = {}
    exec((src / "src/python/grpcio/grpc_core_dependencies.py").read_text(), namespace)
    sources = list(namespace["CORE_SOURCE_FILES"])
    sources += list(namespace["ASM_SOURCE_FILES"]["crypto_asm"])
    sources += EXTRA_SOURCES
    return sources


def source_list(src, files):
    """What to compile: every source, or those of the link set `files`
    (each checked to be one of the release's)."""
    every = every_source(src)
    if files is None:
        return every
    unknown = sorted(set(files) - set(every))
    if unknown:
        sys.exit(f"grpc-core: {LINK_SET_FILE.name} names files the release does not compile: {unknown[:5]}")
    return files


def object_name(source):
    return source.replace("/", "__") + ".o"


def compile_weight(source):
    """What a file costs to compile next to one of the core's own C++ files,
    from the CPU seconds of a build (compile-seconds.tsv: about 4 s for
    those, 1 s for abseil's and BoringSSL's C++, 0.2 s for a C file, next
    to nothing for assembly). For the order (heaviest first, so the last
    minutes are not one long file) and the estimate of the time left."""
    if source.endswith((".cc", ".cpp")):
        return 1.0 if source.startswith("src/core/") else 0.25
    if source.endswith(".c"):
        return 0.05
    return 0.005


def compile_command(source, output, pch=None, action="-c"):
    """The compiler's command line for `source` into `output`: `action` -c
    compiles, -M lists the headers it includes; a header (`.h`) is
    precompiled, as C++."""
    is_header = source.endswith(".h")
    is_cxx = is_header or source.endswith((".cc", ".cpp"))
    compiler = CXX if is_cxx else CC
    command = [compiler] + (["-x", "c++-header"] if is_header else [action])
    command += [source, "-o", output]
    command += compile_flags(compiler) + (CXX_FLAGS if is_cxx else [])
    command += [f"-I{d}" for d in INCLUDE_DIRS]
    if pch is not None:
        command += ["-include", str(pch)]
    return command


def run_compiler(command, cwd):
    """(exit code, stderr, CPU seconds) of one compiler run."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stderr = process.stderr.read()
    # wait4 rather than wait: the compiler's own CPU time, for the table of
    # what each file costs.
    _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), stderr, usage.ru_utime + usage.ru_stime


def compile_one(src, obj_dir, source, pch):
    """Compiles `source` (with the precompiled header `pch`, if not None)
    unless its object exists: (error or None, CPU seconds the compiler
    took). A file that does not compile with the precompiled header is
    compiled again without it, with a warning."""
    obj = obj_dir / object_name(source)
    if obj.exists():
        return None, 0.0
    partial = str(obj) + ".tmp"
    code, stderr, seconds = run_compiler(compile_command(source, partial, pch), src)
    if code != 0 and pch is not None:
        print(f"grpc-core: {source} again, without the precompiled header", flush=True)
        code, stderr, more = run_compiler(compile_command(source, partial), src)
        seconds += more
    if code != 0:
        return f"{source}:\n{' '.join(compile_command(source, partial))}\n{stderr}", seconds
    os.replace(partial, obj)
    return None, seconds


def pch_group(src, source):
    """The precompiled header group of `source` (PCH_GROUPS), or None: C++
    files only, and not those that set a macro before their first
    #include (it must come before any header, the precompiled one too)."""
    group = next((name for prefix, name in PCH_GROUPS.items() if source.startswith(prefix)), None)
    if group is None or not source.endswith(".cc"):
        return None
    text = (src / source).read_text(errors="replace")
    before = text[: text.find("#include")]
    if any(line.lstrip().startswith("#") for line in before.splitlines()):
        return None
    return group


def included_headers(src, source):
    """Every header `source` includes, directly or not, in the order the
    preprocessor meets them (`-M`); empty if it cannot be preprocessed."""
    # -M writes the list to -o's file: here, stdout.
    command = compile_command(source, "-", action="-M")
    result = subprocess.run(command, cwd=src, capture_output=True, text=True)
    if result.returncode != 0:
        return []
    return list(dict.fromkeys(result.stdout.replace("\\\n", " ").split()[2:]))


def common_headers(src, sources):
    """The headers that at least PCH_SHARE of a sample of `sources` include,
    as #include lines, in the order the sample first met each. Only headers
    meant to be included: the C++ library's own (<vector>), abseil's and the
    core's, none of their internal ones."""
    sample = sources[:: max(1, len(sources) // PCH_SAMPLE)]
    jobs = os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        lists = list(pool.map(lambda source: included_headers(src, source), sample))
    counts = {}
    for headers in lists:
        for header in headers:
            counts[header] = counts.get(header, 0) + 1
    lines = []
    for header, count in counts.items():  # first met, first
        if count < PCH_SHARE * len(sample) or "internal" in header:
            continue
        cxx_library = re.match(r"/.*/c\+\+/[^/]+/", header)
        if cxx_library:
            name = header[cxx_library.end():]
            # <vector>, <string>: no directory, no extension. Not
            # <iostream>: it adds a static constructor to every file.
            if "/" not in name and "." not in name and name != "iostream":
                lines.append(f"#include <{name}>")
        elif not header.startswith("/") and header.endswith(".h"):
            # The C library's (absolute paths) come in through the C++
            # library's; the rest as the core's own files name them.
            for directory in ("include/", "third_party/abseil-cpp/"):
                header = header.removeprefix(directory)
            lines.append(f'#include "{header}"')
    return lines


def precompiled_header(src, obj_dir, group, sources):
    """The precompiled header of `group` for its `sources`, built once into
    `obj_dir`, or None where it cannot be (then each file parses its own
    headers)."""
    header = obj_dir / f"pch-{group}.h"
    compiled = obj_dir / f"pch-{group}.h.gch"
    if compiled.exists():
        return header
    lines = common_headers(src, sources)
    if not lines:
        return None
    header.write_text(f"// The headers many of the {group} group's files include (build.py).\n"
                      + "\n".join(lines) + "\n")
    command = compile_command(str(header), str(compiled) + ".tmp")
    code, stderr, seconds = run_compiler(command, src)
    if code != 0:
        print(f"grpc-core: no precompiled header for {group} (it does not compile):\n"
              f"{stderr[:2000]}", file=sys.stderr, flush=True)
        return None
    os.replace(str(compiled) + ".tmp", compiled)
    print(f"grpc-core: precompiled {len(lines)} headers for {group} ({seconds:.0f} s)", flush=True)
    return header


def build(release, sha256, target, files):
    target.mkdir(parents=True, exist_ok=True)
    downloads = cache_root() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = download(release, sha256, downloads)
    src = target / "src"
    unpack(archive, release, src)

    sources = source_list(src, files)
    obj_dir = target / "obj"
    obj_dir.mkdir(exist_ok=True)
    seed_from_sibling(release, sha256, target, obj_dir)
    done = sum((obj_dir / object_name(s)).exists() for s in sources)
    jobs = os.cpu_count() or 1
    print(
        f"grpc-core: compiling gRPC C core {release}: {len(sources)} files "
        f"({done} already built), {jobs} at a time, into {target}",
        flush=True,
    )
    started = time.monotonic()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    step = max(1, len(sources) // 50)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        missing = [s for s in sources if not (obj_dir / object_name(s)).exists()]
        missing.sort(key=compile_weight, reverse=True)
        weight_left = sum(map(compile_weight, missing))
        weight_done = 0.0
        groups = {source: pch_group(src, source) for source in missing}
        members = {}
        for source in missing:  # heaviest first, as they will be compiled
            if groups[source]:
                members.setdefault(groups[source], []).append(source)
        # A header takes about as long to precompile as it saves 20 files
        # (a patched build compiles a few): fewer, and they parse their own.
        for group in [g for g, files in members.items() if len(files) < PCH_MIN_FILES]:
            for source in members.pop(group):
                groups[source] = None
        # The precompiled headers first, two at a time like the rest; the
        # files of no group (C, assembly) meanwhile, then the heaviest
        # first. A file of a group waits for its header, which a thread
        # already took: the headers are the first tasks queued.
        headers = {
            g: pool.submit(precompiled_header, src, obj_dir, g, files)
            for g, files in members.items()
        }

        def compile_with_header(source):
            header = headers[groups[source]].result() if groups[source] else None
            return compile_one(src, obj_dir, source, header)

        ordered = [s for s in missing if not groups[s]] + [s for s in missing if groups[s]]
        futures = {pool.submit(compile_with_header, s): s for s in ordered}
        seconds = {}
        for future in concurrent.futures.as_completed(futures):
            error, seconds[futures[future]] = future.result()
            if error:
                pool.shutdown(cancel_futures=True)
                sys.exit(f"grpc-core: compile failed: {error}")
            done += 1
            weight_done += compile_weight(futures[future])
            if done % step == 0 or done == len(sources):
                elapsed = time.monotonic() - started
                left = max(0.0, elapsed * (weight_left - weight_done) / weight_done)
                print(
                    f"grpc-core: [{done}/{len(sources)}] files compiled "
                    f"({elapsed / 60:.1f} min, about {left / 60:.0f} min left)",
                    flush=True,
                )

    lib_dir = target / "lib"
    lib_dir.mkdir(exist_ok=True)
    library = lib_dir / "libgrpc_core.a"
    partial = lib_dir / "libgrpc_core.a.partial"
    if partial.exists():
        partial.unlink()
    objects = "\n".join(object_name(s) for s in sources)
    (obj_dir / "objects.txt").write_text(objects + "\n")
    subprocess.run(
        ["ar", "qcs", str(partial), "@objects.txt"], cwd=obj_dir, check=True
    )
    partial.rename(library)
    shutil.rmtree(obj_dir)
    (target / "compile-seconds.tsv").write_text(
        "".join(f"{source}\t{seconds[source]:.2f}\n" for source in missing)
    )
    # Every compiler run's CPU time, the precompiled headers' too.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(children, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
    print(
        f"grpc-core: {len(missing)} files compiled in {cpu / 60:.1f} CPU minutes, "
        f"{(time.monotonic() - started) / 60:.1f} minutes",
        flush=True,
    )
    (target / "patches").write_text("".join(f"{p.stem}\n" for p in patches()))
    (target / "patched-sources").write_text("".join(f"{s}\n" for s in sorted(sources_patched())))
    (target / "base").write_text(build_dir(release, sha256, with_patches=False).name + "\n")
    (target / "release").write_text(release + "\n")
    print(f"grpc-core: built {library}", flush=True)


def seed_from_sibling(release, sha256, target, obj_dir):
    """Starts a patched build from the objects of a complete build that
    differs from it only by patches (the build without patches, or one
    with other patches): when every file either build's patches change is
    a `.c`/`.cc` file, those files alone are compiled again."""
    base = build_dir(release, sha256, with_patches=False)
    if any(obj_dir.iterdir()):
        return
    ours = sources_patched()
    for sibling in sorted(base.parent.glob(f"{release}-*")):
        if sibling == target or not (sibling / "release").exists():
            continue
        if sibling != base and read_lines(sibling / "base") != [base.name]:
            continue
        changed = ours | set(read_lines(sibling / "patched-sources"))
        if not all(source.endswith((".c", ".cc")) for source in changed):
            continue
        print(f"grpc-core: starting from the build in {sibling}", flush=True)
        subprocess.run(["ar", "x", str(sibling / "lib" / "libgrpc_core.a")], cwd=obj_dir, check=True)
        for source in changed:
            (obj_dir / object_name(source)).unlink(missing_ok=True)
        return


def read_lines(path):
    """The non-empty lines of `path`, or none if it does not exist."""
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--locate",
        action="store_true",
        help="print the build's directory if it is complete; exit 1 if not",
    )
    args = parser.parse_args()

    release, sha256 = read_release()
    target = build_dir(release, sha256)
    complete = (target / "release").exists()
    if args.locate:
        if not complete:
            sys.exit(1)
        print(target)
        return
    if not complete:
        target.mkdir(parents=True, exist_ok=True)
        # One build per key at a time, whichever clone asked first.
        with open(target.parent / f"{target.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (target / "release").exists():
                build(release, sha256, target, file_set(release, sha256))
    print(target)


if __name__ == "__main__":
    main()
