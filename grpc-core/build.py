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
name order, before anything is compiled, and is part of the cache key. A
build that differs from a complete one only by patches to `.c`/`.cc`
files starts from that build's objects and compiles the patched files
alone.

Everything lives in a cache outside the work tree, one directory per key
(release, archive hash, flags, compiler, layout, patches), so a second clone on
the same machine links against the same library without compiling anything:

    $XDG_CACHE_HOME/fibonacci-grpc/grpc-core/<release>-<key>/
        src/     the unpacked source distribution (headers for grpc_wrap.cc)
        obj/     objects, while building (an interrupted build resumes)
        lib/libgrpc_core.a
        patches  the names of the patches applied, one a line
        release  the release, written last: the build is complete

Usage:
    build.py            build unless the cache has it; print its directory
    build.py --locate   print the directory if it is built, else fail

Standard library only: it runs before any virtualenv exists.
"""

import argparse
import concurrent.futures
import fcntl
import hashlib
import os
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


def compiler_identity(compiler):
    try:
        out = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"grpc-core: cannot run the C compiler {compiler!r}: {error}")
    return out.splitlines()[0]


def patches():
    """The patches to apply, in the order to apply them."""
    return sorted(PATCH_DIR.glob("*.patch"))


def patched_sources(patch):
    """The files a unified diff changes, relative to the source root."""
    prefix = "+++ b/"
    return [
        line[len(prefix):].strip()
        for line in patch.read_text().splitlines()
        if line.startswith(prefix)
    ]


def build_dir(release, sha256, with_patches=True):
    """The cache directory of this release, flags, compiler and (unless
    `with_patches` is false) patches. Without patches the key is what it
    was before patches existed, so unpatched builds keep their cache."""
    key = hashlib.sha256()
    parts = [
        release,
        sha256,
        " ".join(COMMON_FLAGS + CXX_FLAGS + INCLUDE_DIRS + EXTRA_SOURCES),
        CC,
        compiler_identity(CC),
        CXX,
        compiler_identity(CXX),
        str(LAYOUT),
    ]
    if with_patches:
        parts += [f"{patch.name}:{file_sha256(patch)}" for patch in patches()]
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


def source_list(src):
    """The files grpcio's setup.py compiles on Linux, assembly included."""
    namespace = {}
    exec((src / "src/python/grpcio/grpc_core_dependencies.py").read_text(), namespace)
    sources = list(namespace["CORE_SOURCE_FILES"])
    sources += list(namespace["ASM_SOURCE_FILES"]["crypto_asm"])
    sources += EXTRA_SOURCES
    return sources


def object_name(source):
    return source.replace("/", "__") + ".o"


def compile_weight(source):
    """What a file costs to compile next to one of the core's C++ files:
    the C files (BoringSSL, c-ares, upb's generated tables) about a tenth,
    assembly less. For the order (heaviest first, so the last minutes are
    not one long file) and the estimate of the time left."""
    if source.endswith((".cc", ".cpp")):
        return 1.0
    if source.endswith(".c"):
        return 0.1
    return 0.02


def compile_one(src, obj_dir, source):
    obj = obj_dir / object_name(source)
    if obj.exists():
        return None
    is_cxx = source.endswith((".cc", ".cpp"))
    command = [CXX if is_cxx else CC, "-c", source, "-o", str(obj) + ".tmp"]
    command += COMMON_FLAGS + (CXX_FLAGS if is_cxx else [])
    command += [f"-I{d}" for d in INCLUDE_DIRS]
    result = subprocess.run(command, cwd=src, capture_output=True, text=True)
    if result.returncode != 0:
        return f"{source}:\n{' '.join(command)}\n{result.stderr}"
    os.replace(str(obj) + ".tmp", obj)
    return None


def build(release, sha256, target):
    target.mkdir(parents=True, exist_ok=True)
    downloads = cache_root() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = download(release, sha256, downloads)
    src = target / "src"
    unpack(archive, release, src)

    sources = source_list(src)
    obj_dir = target / "obj"
    obj_dir.mkdir(exist_ok=True)
    seed_from_unpatched(release, sha256, target, obj_dir)
    done = sum((obj_dir / object_name(s)).exists() for s in sources)
    jobs = os.cpu_count() or 1
    print(
        f"grpc-core: compiling gRPC C core {release}: {len(sources)} files "
        f"({done} already built), {jobs} at a time, into {target}",
        flush=True,
    )
    started = time.monotonic()
    step = max(1, len(sources) // 50)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        missing = [s for s in sources if not (obj_dir / object_name(s)).exists()]
        missing.sort(key=compile_weight, reverse=True)
        weight_left = sum(map(compile_weight, missing))
        weight_done = 0.0
        futures = {pool.submit(compile_one, src, obj_dir, s): s for s in missing}
        for future in concurrent.futures.as_completed(futures):
            error = future.result()
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
    (target / "patches").write_text("".join(f"{p.stem}\n" for p in patches()))
    (target / "release").write_text(release + "\n")
    print(f"grpc-core: built {library}", flush=True)


def seed_from_unpatched(release, sha256, target, obj_dir):
    """Starts a patched build from the objects of the same build without
    patches, when that one is complete and the patches change only
    `.c`/`.cc` files: the patched files alone are compiled then."""
    base = build_dir(release, sha256, with_patches=False)
    changed = [source for patch in patches() for source in patched_sources(patch)]
    if (
        base == target
        or not (base / "release").exists()
        or any(obj_dir.iterdir())
        or not all(source.endswith((".c", ".cc")) for source in changed)
    ):
        return
    print(f"grpc-core: starting from the unpatched build in {base}", flush=True)
    subprocess.run(["ar", "x", str(base / "lib" / "libgrpc_core.a")], cwd=obj_dir, check=True)
    for source in changed:
        (obj_dir / object_name(source)).unlink(missing_ok=True)


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
                build(release, sha256, target)
    print(target)


if __name__ == "__main__":
    main()
