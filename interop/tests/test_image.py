"""The server's OCI image (deploy/image.sh, `make image`): built from
scratch with buildah under the name deploy/kubernetes.yaml gives it, its
file system exactly the server and the libraries it loads, and the server
in it started (in a chroot of the image's file system, as the manifest's
user) and called. No container runtime runs here (see docs/running.md,
"The image"), so this is as far as this machine goes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml

from harness.paths import REPO, rust_binary
from harness.servers import STEP_TIMEOUT, Server
from conftest import MANIFEST, VERSION_TAG, at_index

BUILDAH = shutil.which("buildah")
IMAGE_SCRIPT = REPO / "deploy" / "image.sh"


def manifest_image() -> str:
    [deployment] = [d for d in yaml.safe_load_all(MANIFEST.read_text())
                    if d and d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container["image"]


def buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT).stdout.strip()


@pytest.fixture(scope="module")
def image_root():
    """The image built, and its file system mounted: yields its path."""
    if BUILDAH is None:
        pytest.skip("buildah is not installed: `apt-get install buildah` "
                    "(.ci/run installs it when it runs as root)")
    if os.geteuid() != 0:
        pytest.skip("buildah needs root here (no user namespace is set up for rootless use)")
    built = subprocess.run([str(IMAGE_SCRIPT), str(rust_binary("server")), manifest_image()],
                           capture_output=True, text=True, timeout=5 * STEP_TIMEOUT)
    assert built.returncode == 0, built.stderr
    container = buildah("from", "--pull-never", manifest_image())
    try:
        yield Path(buildah("mount", container))
    finally:
        buildah("rm", container)


def test_the_image_holds_the_server_and_its_libraries_only(image_root):
    files = sorted(str(path.relative_to(image_root)) for path in image_root.rglob("*")
                   if path.is_file())
    libraries = subprocess.run(["ldd", str(rust_binary("server"))], check=True,
                               capture_output=True, text=True).stdout
    loaded = sorted(part.lstrip("/") for line in libraries.splitlines()
                    for part in line.split() if part.startswith("/"))
    assert files == sorted(["usr/local/bin/server", *loaded])
    config = json.loads(buildah("inspect", "--type", "image", manifest_image()))["OCIv1"]["config"]
    assert config["Entrypoint"] == ["/usr/local/bin/server"]
    assert config["User"] == "65532:65532"
    assert list(config["ExposedPorts"]) == ["1337/tcp"]


def test_the_server_runs_from_the_image(image_root):
    server = Server(["chroot", "--userspec=65532:65532", str(image_root),
                     "/usr/local/bin/server", "--host", "127.0.0.1", "--port", "0"],
                    name="server in the image").require_started()
    try:
        assert server.listening_line.endswith(f"(plaintext, {VERSION_TAG})")
        assert os.readlink(f"/proc/{server.process.pid}/root") == str(image_root)
        with grpc.insecure_channel(server.address) as channel:
            assert at_index(channel, 7) == 13
    finally:
        server.stop()
    assert server.stderr() == ""
