#!/usr/bin/env bash
# The console's checks, as CI runs them (from .ci/run, after the Rust tests):
#   1. installs Node.js/npm and Chromium when missing (Debian packages), and the npm packages from
#      the committed package-lock.json (npm ci);
#   2. regenerates the TypeScript clients from proto/ and rebuilds the bundle, and FAILS when either
#      differs from what is committed (services/console/web/src/gen, services/console/dist);
#   3. runs the unit tests (Vitest) and the end-to-end tests in headless Chromium against the real
#      all-in-one binary (built here if missing). Screenshots: services/console/web/e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
web=services/console/web

log() { printf '\n==> %s\n' "$*"; }
apt_install() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v npm >/dev/null; then
  log "installing Node.js and npm"
  apt_install nodejs npm
fi
chromium_bin=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium_bin" ]; then
  log "installing Chromium"
  apt_install chromium
fi
export CHROMIUM=$chromium_bin

cd "$web"
if [ ! -d node_modules ] || ! npm ls --silent >/dev/null 2>&1; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi

log "console: regenerate the clients and rebuild the bundle"
npm run --silent generate
npm run --silent build
cd "$root"
if ! git diff --quiet --exit-code -- "$web/src/gen" services/console/dist \
  || [ -n "$(git ls-files --others --exclude-standard -- "$web/src/gen" services/console/dist)" ]; then
  git status --short -- "$web/src/gen" services/console/dist >&2
  echo "error: the committed console bundle or generated clients are stale:" >&2
  echo "       run 'make console' and commit services/console/dist and $web/src/gen" >&2
  exit 1
fi

log "console: unit tests"
(cd "$web" && npx vitest run)

log "console: end-to-end tests in headless Chromium"
# The bundle just checked is the one embedded: build the binary that carries it.
cargo build --quiet --bin vigil
(cd "$web" && VIGIL_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/vigil" npx vitest run --config vitest.e2e.config.ts)
