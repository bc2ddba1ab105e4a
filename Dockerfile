# syntax=docker/dockerfile:1
# One image for every node service (gateway, auth, worker, metrics, orchestrator); compose picks the
# service with its command: node services/<name>/dist/main.js
# NODE_IMAGE: the base (tests build on a local stand-in: scripts/make-standin-images).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/gguf/package.json packages/gguf/
COPY packages/db/package.json packages/db/
COPY packages/testkit/package.json packages/testkit/
COPY packages/cli/package.json packages/cli/
COPY services/auth/package.json services/auth/
COPY services/gateway/package.json services/gateway/
COPY services/worker/package.json services/worker/
COPY services/metrics/package.json services/metrics/
COPY services/orchestrator/package.json services/orchestrator/

FROM manifests AS build
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY packages packages
COPY services services
RUN npm run build

FROM manifests AS production-deps
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=production-deps --chown=root:root /app/node_modules node_modules
COPY --from=build /app/package.json ./
COPY --from=build /app/packages packages
COPY --from=build /app/services services
COPY infra/docker/healthcheck.mjs ./healthcheck.mjs
COPY infra/docker/service-entrypoint.sh /usr/local/bin/service-entrypoint.sh
# Writable by the service user: models and the orchestrator's files when no volume is mounted, and
# the gateway's usage spool (compose mounts a named volume there, which takes this owner).
RUN mkdir -p /data /models /spool && chown node:node /data /models /spool
USER node
EXPOSE 8080 8081 8090 8095 8096 8099
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["node", "healthcheck.mjs", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/service-entrypoint.sh"]
CMD ["node", "services/gateway/dist/main.js"]
