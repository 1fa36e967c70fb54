# opsbot container image: `docker build -t opsbot .`
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Queries compile against the committed .sqlx/ metadata (no database needed to build).
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked -p opsbot && cp target/release/opsbot /usr/local/bin/opsbot

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/opsbot --create-home opsbot
COPY --from=build /usr/local/bin/opsbot /usr/local/bin/opsbot
COPY opsbot.example.toml /etc/opsbot/opsbot.example.toml
USER opsbot
WORKDIR /var/lib/opsbot
EXPOSE 8080
ENV OPSBOT_HTTP_LISTEN=0.0.0.0:8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["opsbot"]
CMD ["run", "--log-format", "json"]
