# syntax=docker/dockerfile:1
# Three stages: compile with the dev dependencies, install the production ones with ONNX Runtime's binaries for
# the image's own platform only, then a runtime image with nothing else (sizes: docs/deployment.md).

# Build stage: compile TypeScript with the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
# onnxruntime-node's install script would fetch CUDA libraries; the CPU binaries ship inside the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY nest-cli.json tsconfig.json ./
COPY apps ./apps
COPY libs ./libs
RUN npx nest build

# Production dependencies only, with ONNX Runtime binaries for this platform alone.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
  && keep="$(node -p "process.platform + '/' + process.arch")" \
  && cd node_modules/onnxruntime-node/bin/napi-v6 \
  && for dir in */*; do if [ "$dir" != "$keep" ]; then rm -rf "$dir"; fi; done \
  && test -f "$keep/onnxruntime_binding.node"

# Runtime: the compiled gateway, its dependencies and the models, owned by root and only readable by the app.
FROM node:24-bookworm-slim AS runtime
WORKDIR /app
# ORT_DISABLE_TELEMETRY: otherwise ONNX Runtime keeps a telemetry database in ~/.cache and logs in /tmp,
# which a read-only root filesystem refuses; with it the gateway writes no file at all.
# MALLOC_*: a fixed mmap threshold returns released ONNX sessions' weights to the system whole, so RSS does not
# creep with every reload (docs/operations.md, Memory). Compose and Kubernetes inherit all of these.
ENV NODE_ENV=production ORT_DISABLE_TELEMETRY=1 MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=1048576 MALLOC_TRIM_THRESHOLD_=33554432 MODELS_DIR=/app/models
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY models ./models
RUN groupadd --system --gid 10001 bales && useradd --system --uid 10001 --gid bales --no-create-home --shell /usr/sbin/nologin bales
# The bales user, by number, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 10001:10001
EXPOSE 8000
# Liveness, not readiness: /health/live does not ask Redis, so an outage never marks the container unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# --max-semi-space-size=64: requests in flight die young instead of being copied by scavenges
# (docs/operations.md, Memory).
CMD ["node", "--max-semi-space-size=64", "dist/apps/gateway/src/main.js"]
