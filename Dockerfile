# ha-broker container image: the broker client by default; `server`, `dispatcher` and `preflight`
# as the command select the other programs.
#
#   docker build -t ha-broker .        # compiles from source in the build stage (default target)
#   buildah bud --isolation chroot --build-arg NODE_IMAGE=<local Node 24 image> \
#     --target prebuilt -t ha-broker .  # copies an app staged in .cache/image-app/ instead
#
# The `prebuilt` target is for machines where the build cannot reach a package registry: stage
# .cache/image-app/ with dist/ (including dist/client-templates/), the production node_modules/
# and package.json first (test/image does). No stage after `build` has a RUN step, so the image has no build tools and even a base
# with nothing but the node binary works.

ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

# ---- build: compile TypeScript, then keep the production dependencies only ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no install script runs (the `node` devDependency would fetch a runtime).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/copy-client-templates.mjs ./scripts/
# Snyk's client templates (BROKER_SCM_TYPE presets) come from the snyk-broker devDependency: copy
# them into dist/ before the prune removes it.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
 && node scripts/copy-client-templates.mjs dist \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir -p /app \
 && cp -R dist node_modules package.json /app/

# ---- runtime: everything but the application ----
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ha-broker" \
      org.opencontainers.image.description="Wire-compatible Snyk Broker client, server and dispatcher with a high-availability mode" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ha-broker/ha-broker" \
      org.opencontainers.image.url="https://github.com/ha-broker/ha-broker"
ENV NODE_ENV=production
# V8's young generation grows to 64 MiB under steady load and keeps it (RSS after load); capped
# at 2 x 8 MiB, the same load runs at the same CPU per request (bench/README.md, issue 5).
# Setting NODE_OPTIONS yourself replaces this; without a semi-space flag in it the programs add
# --max-semi-space-size=8 themselves at start (src/heap-flags.ts, issue 23).
# --expose-gc lets the idle collection give the load's garbage back once idle (src/idle-collection.ts);
# without it in yours the programs add it the same way.
ENV NODE_OPTIONS="--max-semi-space-size=8 --expose-gc"

WORKDIR /app
USER 10001:10001
EXPOSE 7341
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["client"]

# ---- prebuilt (--target prebuilt): the application staged outside the build ----
FROM runtime AS prebuilt
# Owned by root: the runtime user cannot change the code.
COPY .cache/image-app/ /app/

# ---- default: the application built above ----
FROM runtime
COPY --from=build /app /app
