# syntax=docker/dockerfile:1
# One livesnap node: `docker build -t livesnap .`, then see deploy/ for
# Kubernetes. The build fetches crates from crates.io and nasm from Debian.

FROM rust:1.95-bookworm AS build
# nasm: openh264 builds its assembly with it (without it decoding is ~1.2x slower).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nasm \
 && rm -rf /var/lib/apt/lists/*
# host/builtins' build script compiles functions/ for wasm32-wasip2 and embeds them.
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# Cache mounts keep the crate downloads and both target folders (the host's and
# functions/target, where the builtins' build script builds) between builds;
# they are not in the image, so the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    --mount=type=cache,target=/src/functions/target,sharing=locked \
    cargo build --release --locked -p livesnap --bin livesnap \
 && install -D -m 0755 target/release/livesnap /out/livesnap

FROM debian:bookworm-slim
# ca-certificates: HTTPS to S3/OBS, callback receivers and pull sources.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The state folder (compiled-component cache; state.db on SQLite) belongs to an
# unprivileged user; mount a volume there for a writable, read-only-root pod.
RUN groupadd --system --gid 10001 livesnap \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/livesnap --shell /usr/sbin/nologin livesnap \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/livesnap
COPY --from=build /out/livesnap /usr/local/bin/livesnap
USER 10001:10001
WORKDIR /var/lib/livesnap
EXPOSE 1935 8080
ENTRYPOINT ["livesnap"]
# The runtime config and manifest are mounted (deploy/configmap.yaml). Without
# them, `docker run -p 1935:1935 -p 8080:8080 livesnap up --rtmp-listen
# 0.0.0.0:1935 --http-listen 0.0.0.0:8080` runs one node on the embedded defaults.
CMD ["up", "--runtime-config", "/etc/livesnap/runtime-config.toml", "--manifest", "/etc/livesnap/spin.toml"]
