#!/bin/sh
# Writes a production-only install of the built server (dist/, drizzle/ and its
# runtime dependencies, no dev dependencies) to OUT_DIR; `node OUT_DIR/dist/main.js`
# then runs it. The Dockerfile runs this after building, and so does the test
# of the deploy bundle. PNPM may name the pnpm command, words split on spaces
# (default: pnpm).
set -eu
out=${1:?usage: scripts/deploy-server.sh OUT_DIR}
cd "$(dirname "$0")/.."
rm -rf "$out"
# --legacy: pnpm 10's default deploy needs inject-workspace-packages, which
# would copy workspace packages into every dependent during development too.
# shellcheck disable=SC2086
${PNPM:-pnpm} --filter @httpqueue/server deploy --legacy --prod "$out"
