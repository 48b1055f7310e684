# syntax=docker/dockerfile:1
# Node 24, the active LTS (maintained until April 2028); the code keeps running on Node 20 (engines).
# Build stage: compile TypeScript to dist/.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY db ./db
RUN npm run build

# Production dependencies, in a stage with a compiler: pkcs11js (the PKCS#11 binding, an optional
# dependency used when ca.key is a key in an HSM) is a native module built at install time.
FROM node:24-bookworm-slim AS deps
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Runtime stage: production dependencies and the compiled code only, as a non-root user. The
# HSM's own PKCS#11 module (a vendor library, or Debian's softhsm2) is added by an image built
# on this one, or mounted; ca.pkcs11.module names its path.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
# The configuration file that both `serve` and the HEALTHCHECK read: to use another file, set
# SERVICE_CA_CONFIG (rather than passing serve --config), and the HEALTHCHECK follows it.
ENV SERVICE_CA_CONFIG=/etc/service-ca/config.yaml
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The node image's "node" user, by number, so that Kubernetes can check runAsNonRoot.
USER 1000:1000
EXPOSE 8443 8080
# GET /healthz on the public listener that the configuration names (public.host, public.port),
# with the same loader serve uses. healthcheck.js runs on its own, without the rest of the CLI.
# A container that runs this image as the rotation agent instead (`agent …`) has no CA to ask:
# disable the check there (compose: healthcheck: { disable: true }; Kubernetes ignores it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "dist/src/cli/healthcheck.js"]
ENTRYPOINT ["node", "dist/src/cli/index.js"]
CMD ["serve"]
