# Build stage: compile the release binary, without the sandbox (the fake OpenAI API for tests
# and demos): the production image has no `sandbox` subcommand.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# The workspace member must be present for Cargo to read the workspace, even when unused.
COPY crates ./crates
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --no-default-features --bin openai-governor

# Runtime stage: a small image with only the binary and CA certificates.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/openai-governor governor \
    && mkdir -p /var/lib/openai-governor && chown governor /var/lib/openai-governor
COPY --from=build /src/target/release/openai-governor /usr/local/bin/openai-governor
USER governor
WORKDIR /var/lib/openai-governor
ENV OG_LISTEN=0.0.0.0:8080 OG_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/openai-governor"]
CMD ["serve"]
