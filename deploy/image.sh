#!/usr/bin/env bash
# Builds the server's OCI image with buildah, from scratch: nothing is
# pulled. The image holds the server (stripped) and exactly the shared
# libraries it loads (the dynamic loader and glibc's, as `ldd` lists them),
# runs as user 65532 (the manifest's runAsUser) and listens on 1337.
#
#   deploy/image.sh SERVER_BINARY TAG      (make image does this)
#
# buildah needs root here (or a user namespace set up for rootless use).
set -euo pipefail

server=$1
tag=$2

container=$(buildah from scratch)
trap 'buildah rm "$container" >/dev/null' EXIT
root=$(buildah mount "$container")

install -d "$root/usr/local/bin" "$root/tmp"
chmod 1777 "$root/tmp"
strip -o "$root/usr/local/bin/server" "$server"

# Each library at the path the loader looks for it, the loader included
# (ldd prints "name => /path (address)" for libraries and "/path
# (address)" for the loader; linux-vdso is the kernel's, not a file).
ldd "$server" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r library; do
    install -D -m 0755 "$(readlink -f "$library")" "$root$library"
  done

buildah unmount "$container" >/dev/null
buildah config \
  --entrypoint '["/usr/local/bin/server"]' --cmd '' \
  --port 1337/tcp --user 65532:65532 --workingdir / \
  --label org.opencontainers.image.title=fibonacci-grpc \
  --label org.opencontainers.image.description="The Fibonacci gRPC service of the Python gRPC guide, on gRPC's C core" \
  "$container"
buildah commit --quiet --rm "$container" "$tag" >/dev/null
trap - EXIT
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
