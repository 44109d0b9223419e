# syntax=docker/dockerfile:1
#
# One image with every Vigil service: vigil-registry, vigil-termination, vigil-geo, vigil-policy, the
# SSH gateway vigil-gateway, and
# sessionctl for operators (`kubectl exec deploy/vigil-registry -- sessionctl sessions list`; the
# image has no shell, exec runs the binary directly). There is no ENTRYPOINT: each Kubernetes
# Deployment names its binary with `command`, and `docker run IMAGE vigil-registry` works too (the
# binaries are on PATH).
#
#   docker build -t vigil:dev .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The crate registry and the build directory are cache mounts, so a rebuild after a code change
# compiles our crates only. A cache mount is not part of the image, so the binaries are copied out
# of it within the same step. --locked: exactly the dependency versions in Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        --bin vigil-registry --bin vigil-termination --bin vigil-geo --bin vigil-policy --bin vigil-gateway --bin sessionctl \
    && mkdir /out \
    && cp target/release/vigil-registry target/release/vigil-termination target/release/vigil-geo \
          target/release/vigil-policy target/release/vigil-gateway target/release/sessionctl /out/

# glibc, libgcc and CA certificates, nothing else: no shell, no package manager. Same Debian release
# (bookworm) as the builder, so the binaries find the glibc they were linked against.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Vigil: live remote-access session visibility and control" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
# uid/gid 65532, which the Kubernetes manifests name in runAsUser/runAsGroup.
USER nonroot:nonroot
# registry (agents' GatewayLink and SessionRegistry), geo, policy, termination.
EXPOSE 7400 7401 7402 7403
