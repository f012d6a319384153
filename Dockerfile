# Passerelle container image: a Matrix application service bridging IRC,
# Slack and Telegram. See docs/OPERATORS.md ("Docker").
#
#   docker build -t passerelle .
#   docker run --rm -v passerelle-data:/data --entrypoint cat passerelle \
#       /usr/share/doc/passerelle/config.example.yaml > config.yaml   # then edit it
#   docker run --rm -v passerelle-data:/data passerelle check-config
#   docker run --rm -v passerelle-data:/data passerelle generate-registration
#   docker run -d --name passerelle --stop-timeout 45 \
#       -v passerelle-data:/data -p 127.0.0.1:29300:29300 passerelle
#
# Inside the container, config.yaml must listen on all interfaces
# (`appservice.listen: 0.0.0.0:29300`), or nothing outside can reach it.
#
# The RUN --mount cache lines need BuildKit (the default builder since
# Docker 23); they only speed up rebuilds.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The full image (not -slim) has the C toolchain that the bundled SQLite and
# aws-lc (rustls) build scripts need.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin passerelle \
 && install -D -m 0755 target/release/passerelle /out/passerelle

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: the HTTP client and the IRC TLS connections verify servers
# against the system trust store. Nothing else is installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 passerelle \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin passerelle \
 && install -d -m 0700 -o 10001 -g 10001 /data

COPY --from=build /out/passerelle /usr/local/bin/passerelle
COPY config.example.yaml /usr/share/doc/passerelle/config.example.yaml

# /data holds config.yaml, registration.yaml and the SQLite database
# (relative paths in config.yaml resolve against the working directory).
WORKDIR /data
VOLUME ["/data"]

# The default for -c/--config of every subcommand, so that
# `docker run … passerelle generate-registration` needs no flag.
ENV PASSERELLE_CONFIG=/data/config.yaml
# Plain text logs without ANSI colours (or set `logging.format: json`).
ENV NO_COLOR=1

USER 10001:10001

# appservice.listen; add -p for metrics.listen (29301) or the Telegram
# webhook listener if you enable them.
EXPOSE 29300

# The daemon serves /health on the appservice listener (200 when the
# database answers, 503 otherwise). The image has no curl or wget and
# installs none: the check below uses bash's /dev/tcp, which is already in
# the base image, to send one HTTP/1.0 request and look for " 200 " in the
# status line. It assumes the listener is reachable on 127.0.0.1 inside the
# container at HEALTHCHECK_PORT (set it if appservice.listen uses another
# port). The listener opens only once the homeserver has answered, hence the
# start period.
ENV HEALTHCHECK_PORT=29300
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HEALTHCHECK_PORT} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop) drains in-flight work for up to about 40 s; give it
# time with `docker run --stop-timeout 45` or compose `stop_grace_period: 45s`
# (Docker's default is 10 s, after which it sends SIGKILL).
STOPSIGNAL SIGTERM
ENTRYPOINT ["passerelle"]
CMD ["run", "-c", "/data/config.yaml"]
