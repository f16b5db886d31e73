# Multi-stage build: compile in the Rust image, run from a slim Debian with CA certificates.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY tests/fakes/Cargo.toml tests/fakes/Cargo.toml
COPY src src
COPY tests tests
COPY benches benches
COPY wordlists wordlists
COPY config config
RUN cargo build --release --locked --bin incd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/incd --create-home incd
COPY --from=build /src/target/release/incd /usr/local/bin/incd
COPY config/incd.example.toml /etc/incd/incd.example.toml
USER incd
WORKDIR /var/lib/incd
ENV INCD_DATA_DIR=/var/lib/incd/data \
    RUST_LOG=info
VOLUME ["/var/lib/incd/data"]
# Socket Mode is outbound only: no port to expose. INCD_HTTP_ADDR enables /healthz and /metrics.
ENTRYPOINT ["/usr/local/bin/incd"]
CMD ["run"]
