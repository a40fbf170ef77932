# syntax=docker/dockerfile:1.7
# easel-ingest: the upload API, and `easel-ingest migrate` for the migration Job.
# Build from the repository root:
#   docker build -f deploy/docker/ingest.Dockerfile -t REGISTRY/easel/ingest:VERSION .
# (BuildKit reads ingest.Dockerfile.dockerignore beside this file.)

# Both pinned; CI may swap in digests: --build-arg RUST_IMAGE=rust@sha256:...
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
# distroless "cc": glibc + libgcc + CA certificates, no shell, uid 65532. Debian 12,
# like the build stage, so the glibc the binary was linked against is there.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# g++ for crates that build C++ (a transitive dependency may); gcc is in the image.
# Package versions are not pinned (DL3008): the base image is, and the mirrors
# drop superseded versions, which would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches keep crates.io downloads and build outputs between image builds;
# the binary is copied out because the target cache is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p easel-ingest \
    && install -D -m 0755 target/release/easel-ingest /out/easel-ingest

FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=build /out/easel-ingest /usr/local/bin/easel-ingest
# Settings are read from ./config (base.yaml + production.yaml) and then APP_* variables.
# The migrations are compiled into the binary (sqlx::migrate!); the folder rides along so
# that an operator can read, in the image, the schema a release expects.
COPY config/ /app/config/
COPY migrations/ /app/migrations/
ENV APP_ENVIRONMENT=production
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/easel-ingest"]
