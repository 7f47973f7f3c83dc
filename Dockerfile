# syntax=docker/dockerfile:1

# Build stage: the whole workspace, built; then a production-only install of
# the server (scripts/deploy-server.sh, the same script the tests run).
FROM node:20-bookworm-slim AS build
ENV TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
WORKDIR /src
RUN npm install --global --no-audit --no-fund pnpm@10.34.9
# The packages first, from the lockfile alone: this layer is reused until the
# lockfile changes, whatever else does.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
COPY patches ./patches
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --offline
RUN pnpm exec turbo run build --filter=@httpqueue/server...
RUN sh scripts/deploy-server.sh /out

# Runtime stage: node, the server and its runtime dependencies; no build tools.
FROM node:20-bookworm-slim
# SHUTDOWN_TIMEOUT under `docker stop`'s 10 s, so that a plain `docker stop`
# lets running deliveries finish; docker-compose.yml gives 30 s within a 45 s
# stop_grace_period (or run `docker stop -t 45` with a longer timeout).
ENV NODE_ENV=production \
    GRPC_HOST=0.0.0.0 \
    GRPC_PORT=50051 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    SHUTDOWN_TIMEOUT=8s
WORKDIR /app
COPY --from=build --chown=root:root /out ./
# The image's unprivileged user; the files stay root-owned and read-only to it.
USER node
EXPOSE 50051 8080
# /healthz on HTTP_HOST (loopback when it listens on every interface).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const h = process.env.HTTP_HOST || '127.0.0.1'; const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h; fetch(`http://${host}:${process.env.HTTP_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1 and handles SIGTERM itself: no new calls, running deliveries
# finish (up to SHUTDOWN_TIMEOUT), then it exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
