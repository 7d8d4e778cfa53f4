#!/usr/bin/env bash
# Assembles the root filesystem of pushkit's image, the way distroless
# assembles its "cc" base: the binary, the shared libraries it links (as
# ldd finds them), the CA bundle (sinks reach backends over https), a
# passwd and group naming the non-root user 65532, the baked-in conf dir,
# and nothing else: no shell, no package manager.
#
#   samples/container/rootfs.sh BINARY OUTDIR
#
# OUTDIR/rootfs is the image's root; OUTDIR/data is /var/lib/pushkit, to be
# copied owned by 65532 (the Dockerfile and build.sh do). Used by the
# Dockerfile's build stage and by build.sh alike, so both images hold the
# same files.
set -euo pipefail

bin=${1:?usage: rootfs.sh BINARY OUTDIR}
out=${2:?usage: rootfs.sh BINARY OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root="$out/rootfs"

rm -rf "$out"
# /etc/pushkit/auth is where the sample DaemonSet mounts its token Secret.
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/etc/pushkit/conf.d" "$root/etc/pushkit/auth" "$out/data"
# Mount points a runtime fills (and that a read-only root cannot grow).
mkdir -p "$root/dev" "$root/proc" "$root/sys" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/pushkit"

# The shared libraries, at the paths the dynamic loader looks for them.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/pushkit:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
install -m 0644 "$here/pushkit.conf" "$root/etc/pushkit/conf.d/pushkit.conf"
