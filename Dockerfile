# syntax=docker/dockerfile:1.7
#
# Rapport container image: one image carrying the four service binaries and
# rapportctl (used by the Helm test pod). The Helm chart picks the binary per
# Deployment with `command:`.
#
#   docker build -t rapport:0.1.0 .
#
# Stage 1 compiles the workspace in release mode (protos are compiled by
# protox, pure Rust, so no protoc is needed; SQLite is bundled). Stage 2 is a
# distroless runtime (glibc, libgcc, CA certificates, tzdata, no shell, no
# package manager) running as the unprivileged uid 65532.

ARG RUST_VERSION=1.95
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# gcc/make for the bundled C code (libsqlite3-sys, crypto); no OpenSSL is linked.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        --bin rapport-profile --bin rapport-classification \
        --bin rapport-routing --bin rapport-outreach --bin rapportctl \
    && mkdir -p /out \
    && cp target/release/rapport-profile target/release/rapport-classification \
          target/release/rapport-routing target/release/rapport-outreach \
          target/release/rapportctl /out/

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rapport" \
      org.opencontainers.image.description="Rapport contact-center routing mesh: rapport-profile, rapport-classification, rapport-routing, rapport-outreach, rapportctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder --chown=0:0 --chmod=0555 /out/ /usr/local/bin/
# Numeric uid/gid so Kubernetes runAsNonRoot can verify them without /etc/passwd.
USER 65532:65532
WORKDIR /tmp
# gRPC 50051-50054, admin HTTP (/metrics, /healthz, /readyz) 51051-51054.
EXPOSE 50051 50052 50053 50054 51051 51052 51053 51054
ENV RUST_LOG=info
# No default service: the chart (or `docker run … rapport-routing`) names one.
ENTRYPOINT []
CMD ["/usr/local/bin/rapportctl", "--help"]
