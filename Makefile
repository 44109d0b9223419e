# Vigil — common tasks. `make run` starts the embedded default; `make test` runs every test.

CARGO ?= cargo
# Where the tests find PostgreSQL and Redis (each test makes its own schema / channel namespace).
export VIGIL_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export VIGIL_TEST_REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: run build test lint fmt check-fmt clippy clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run every service in one process on SQLite + in-process bus, with simulated gateways
	$(CARGO) run --bin vigil -- run

build: ## build every crate
	$(CARGO) build --workspace --all-targets

test: ## run every test (needs PostgreSQL and Redis; see README)
	$(CARGO) test --workspace

lint: check-fmt clippy ## formatting and clippy, as CI runs them

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
