#!/usr/bin/env bash
# Builds pushkit's image into local containers-storage as pushkit:dev with
# buildah, daemonless and offline: the Dockerfile's final stage (FROM
# scratch), assembled from a binary built on this machine, so no base
# image is pulled. `docker build .` runs the whole Dockerfile, its Rust
# build stage included, and gives the same files.
#
#   samples/container/build.sh
#
# PUSHKIT_BIN     the binary (default target/release/pushkit, built if missing)
# PUSHKIT_IMAGE   the tag (default pushkit:dev)
# BUILDAH         the buildah command and its global flags
#                 (default: buildah --storage-driver vfs)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=${PUSHKIT_BIN:-target/release/pushkit}
tag=${PUSHKIT_IMAGE:-pushkit:dev}
read -ra buildah <<< "${BUILDAH:-buildah --storage-driver vfs}"

if [ ! -x "$bin" ]; then
    cargo build --release --bin pushkit
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
samples/container/rootfs.sh "$bin" "$stage"

ctr=$("${buildah[@]}" from scratch)
"${buildah[@]}" copy "$ctr" "$stage/rootfs" / > /dev/null
"${buildah[@]}" copy --chown 65532:65532 "$ctr" "$stage/data" /var/lib/pushkit > /dev/null
# As the Dockerfile's final stage says it.
"${buildah[@]}" config \
    --user 65532:65532 \
    --port 9529/tcp \
    --volume /var/lib/pushkit \
    --entrypoint '["/usr/local/bin/pushkit", "run", "--conf-dir", "/etc/pushkit/conf.d"]' \
    --cmd '' \
    --label org.opencontainers.image.title=pushkit \
    --label "org.opencontainers.image.version=$("$bin" --version | awk '{print $2}')" \
    "$ctr"
"${buildah[@]}" commit --rm "$ctr" "$tag" > /dev/null
echo "built $tag"
