#!/bin/sh
# Writes a production-only install of the built server (dist/, drizzle/ and its
# runtime dependencies, no dev dependencies, no TypeScript nor type
# declarations) to OUT_DIR, a path relative to where it is run; `node
# OUT_DIR/dist/main.js` then runs it. It writes nothing outside OUT_DIR, and
# refuses a tree that is not built (`pnpm build` first). The Dockerfile runs
# this after building, and so does the test of the deploy bundle. PNPM may
# name the pnpm command, words split on spaces (default: pnpm).
set -eu
fail() {
  echo "deploy-server.sh: $*" >&2
  exit 1
}
[ $# -eq 1 ] && [ -n "$1" ] || fail "usage: scripts/deploy-server.sh OUT_DIR"
root=$(cd "$(dirname "$0")/.." && pwd)
parent=$(dirname "$1")
mkdir -p "$parent"
out="$(cd "$parent" && pwd)/$(basename "$1")"
case "$root/" in "$out"/*) fail "$out holds the checkout: choose another folder" ;; esac
case "$out/" in "$root"/*) fail "$out is inside the checkout: choose a folder outside it" ;; esac
cd "$root"
for built in apps/server/dist/main.js packages/proto/dist/index.js packages/sdk/dist/signing.js; do
  [ -f "$built" ] || fail "$built is missing: build first (pnpm install && pnpm build)"
done
rm -rf "$out"
# pnpm deploy --legacy writes the bundle's bin shims to the output path taken
# relative to the checkout: given as such, both land in OUT_DIR.
relative=$(node -e 'console.log(require("node:path").relative(process.argv[1], process.argv[2]))' "$root" "$out")
# --legacy: pnpm 10's default deploy needs inject-workspace-packages, which
# would copy workspace packages into every dependent during development too.
# shellcheck disable=SC2086
${PNPM:-pnpm} --filter @httpqueue/server deploy --legacy --prod "$relative"
# TypeScript comes as an optional peer of cosmiconfig (graphile-worker reads
# config files with it; httpqueue has none), and type declarations as
# dependencies of typed packages: the runtime needs neither.
find "$out/node_modules" -depth \( -path '*/node_modules/typescript' -o -path '*/node_modules/@types' \
  -o -path '*/node_modules/.pnpm/typescript@*' -o -path '*/node_modules/.pnpm/@types+*' \
  -o -path '*/node_modules/.bin/tsc' -o -path '*/node_modules/.bin/tsserver' \) -prune -exec rm -rf {} +
# pnpm 10's deploy --legacy also writes the bin shims under the checkout, at
# the output's absolute path appended to it: take them back, and the folders
# made for them (only if empty).
for stray in "$root$out" "$root/apps/server$out"; do
  [ -d "$stray/node_modules/.bin" ] || continue
  rm -rf "$stray/node_modules/.bin"
  dir="$stray/node_modules"
  while [ "$dir" != "$root" ] && rmdir "$dir" 2>/dev/null; do dir=$(dirname "$dir"); done
done
