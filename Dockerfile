# pushkit's container image.
#
# `docker build .` (or `buildah bud .`) runs both stages: it compiles
# pushkit, then assembles a FROM-scratch image of the binary, the shared
# libraries it links, a CA bundle and a passwd entry, the way distroless
# builds its "cc" image. samples/container/build.sh builds the same final
# stage offline, from a binary built on the machine, with buildah.
#
# The image runs as user 65532, listens on every interface (:9529), and
# writes only under /var/lib/pushkit, so its root filesystem can be
# read-only. See the README ("Run the image", "Security").

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pushkit \
    && samples/container/rootfs.sh target/release/pushkit /stage

FROM scratch
COPY --from=build /stage/rootfs/ /
COPY --from=build --chown=65532:65532 /stage/data/ /var/lib/pushkit/
USER 65532:65532
EXPOSE 9529
VOLUME ["/var/lib/pushkit"]
ENTRYPOINT ["/usr/local/bin/pushkit", "run", "--conf-dir", "/etc/pushkit/conf.d"]
