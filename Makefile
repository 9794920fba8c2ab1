# Vigil — make help lists the targets.
GO        ?= go
BIN       ?= bin/vigil
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
DEV_DIR   ?= .vigil-dev
TEST_TIMEOUT ?= 20m
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: help build run test test-vault bench bench-pinned lint clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/vigil
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

run: build ## run the signer on embedded defaults (dev keys, SQLite, minimal network) at http://127.0.0.1:9000
	$(BIN) serve --dev --data-dir $(DEV_DIR)

test: lint ## run the whole test suite (set VIGIL_REQUIRE_EXTERNAL=1 to fail instead of skip when promtool etc. are missing)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v /spec-tests/)
	@echo "spec-test runners (case counts; full output on failure):"
	@log=$$(mktemp); \
	if $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./spec-tests/... >$$log 2>&1; then \
		grep -E '(cases|checks)( run| skipped|,|$$)|^ok' $$log; rm -f $$log; \
	else cat $$log; rm -f $$log; exit 1; fi
	$(MAKE) --no-print-directory test-vault

test-vault: ## Vault key source against an in-process Vault core (nested module keystore/vaulttest; first build ~5 min)
	cd keystore/vaulttest && $(GO) vet ./... && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

PINNED_DURATION ?= 20s
PINNED_ROUNDS ?= 5

bench-pinned: build ## the signer's own cost: server pinned to CPU 0, load generator and Postgres on CPU 1, ratios to raw BLS on CPU 0 in one run
	@url=$$(deploy/dev/throwaway-postgres.sh start); trap 'deploy/dev/throwaway-postgres.sh stop' EXIT; \
	deploy/dev/throwaway-postgres.sh pin 1; \
	$(BIN) bench --server-cpus 0 --load-cpus 1 --duration $(PINNED_DURATION) --rounds $(PINNED_ROUNDS) --burst 1000 --overload 3 --slashing-protection-db-url "$$url"

bench: build bench-pinned ## raw BLS vs end-to-end HTTP signing (SQLite, Postgres), import at scale, keystore decryption scaling, startup with 10k keys per store
	@url=$$(deploy/dev/throwaway-postgres.sh start); trap 'deploy/dev/throwaway-postgres.sh stop' EXIT; \
	$(BIN) bench --duration 20s --rounds 10 --slashing-protection-db-url "$$url" --ha \
		--import-validators 10000 --import-attestations 1000
	$(GO) test -run '^$$' -bench . -benchtime 3s ./slashing/sqlite/ ./signer/
	$(GO) test -run '^$$' -bench 'KeystoreDecryptScaling|KeyringStartup10k' -benchtime 1x -timeout 30m ./keystore/
	cd keystore/vaulttest && $(GO) test -run '^$$' -bench Startup10k -benchtime 1x -timeout 60m .

lint: ## gofmt, go vet and the dependency rule (deploy/dev/check-deps.sh: signer/api/failover never reach the Vault SDK or pgx, signer never net/http, api never imports keystore)
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) deploy/dev/check-deps.sh

.PHONY: chaos
chaos: ## HA pair + Postgres + HAProxy under conflicting load and injected faults; checks no slashable pair (DURATION=60s, SEED=...)
	VIGIL_CHAOS_DURATION=$(or $(DURATION),60s) VIGIL_CHAOS_SEED=$(SEED) $(GO) test -count=1 -run TestChaos -timeout 0 -v ./cmd/vigil

clean: ## remove build output and the dev data dir
	rm -rf bin $(DEV_DIR)

.PHONY: e2e-failover
e2e-failover: ## validator-client failover on a Lodestar v1.5.1 devnet (installs Lodestar into ~/.cache/vigil on first use; ~6 min: hot, cold and HA variants)
	$(GO) test -count=1 -run TestE2EFailoverDevnet -timeout 15m -v ./cmd/vigil
