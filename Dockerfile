# syntax=docker/dockerfile:1
#
# The two images of the project, from one build of the workspace:
#
#   docker build --target movieapp-operator -t movieapp-operator:0.1.0 .
#   docker build --target api-worker        -t api-worker:0.1.0 .
#
# (Without --target you get the operator: it is the last stage.)
#
# One image per binary rather than one image holding both: each image has a
# single ENTRYPOINT, so the operator's worker Deployment passes only the
# subcommand (`serve`, `worker`) and the chart only `run`; an image never
# carries a binary it does not run. Both targets share every build stage, so
# building the second one costs nothing.
#
# Runtime: distroless (glibc + CA certificates, no shell, no package manager),
# user 65532:65532 (distroless "nonroot"); both binaries use rustls, so no
# OpenSSL is needed. The chart and the operator run them with a read-only
# root filesystem. Pin the base images by digest in your pipeline by
# overriding RUST_IMAGE and RUNTIME_IMAGE (e.g. name:tag@sha256:...).
#
# tests/delivery/build-release.sh runs the same `cargo build` on the same
# context (.dockerignore applied). tests/images/build.sh builds both images
# with buildah where no image registry is reachable: RUNTIME_IMAGE is then a
# base assembled from Debian packages standing in for distroless, and
# BINARIES an image holding /out/ with the binaries build-release.sh built
# (the same `cargo build` line, from the same context). A release leaves
# BINARIES at its default: the full multi-stage build below.

ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=builder

# ---- cargo-chef: compiles the dependencies in a layer of their own, rebuilt
# only when Cargo.toml/Cargo.lock change, not on every source change.
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}" \
 && rm -rf "${CARGO_HOME:-/usr/local/cargo}/registry"
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked -p movieapp-operator -p api-worker --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p movieapp-operator -p api-worker \
 && mkdir -p /out \
 && cp target/release/movieapp-operator target/release/api-worker /out/

# ---- where the runtime images take /out/ from: the builder stage above, or
# an image given as BINARIES (tests/images/build.sh, no registry reachable).
FROM ${BINARIES} AS binaries

# ---- runtime images
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/movieapp/movieapp" \
      org.opencontainers.image.url="https://github.com/movieapp/movieapp" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="movieapp"
USER 65532:65532

FROM runtime AS api-worker
LABEL org.opencontainers.image.title="api-worker" \
      org.opencontainers.image.description="The movie service: TMDB catalogue, accounts, watchlists, notifications and background jobs."
COPY --from=binaries --chown=0:0 --chmod=0555 /out/api-worker /usr/local/bin/api-worker
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/api-worker"]
CMD ["serve"]

FROM runtime AS movieapp-operator
LABEL org.opencontainers.image.title="movieapp-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs MovieApp objects on AWS and Kubernetes."
COPY --from=binaries --chown=0:0 --chmod=0555 /out/movieapp-operator /usr/local/bin/movieapp-operator
# glibc's allocator keeps an arena for each thread that allocates while
# another does (up to 8 per core), and what an arena frees stays in it for
# its own next allocations: two arenas keep the operator's memory with 500
# MovieApps lower (docs/benchmarks.md, which runs the binary with this
# stage's ENV lines).
ENV MALLOC_ARENA_MAX=2
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/movieapp-operator"]
CMD ["run"]
