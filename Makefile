# Rapport: the two commands that matter are `make demo` and `make test`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every binary (services, rapportctl)
	$(CARGO) build --workspace --bins

.PHONY: demo
demo: ## Start Redis + the four services, seed the reference case, route real calls
	@scripts/ensure-deps.sh redis
	$(CARGO) build --workspace --bins
	./target/debug/rapportctl demo

.PHONY: test
test: ## Run every test (unit, Redis/SQL integration, end-to-end), hermetic
	@scripts/ensure-deps.sh redis postgres
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast
	@$(MAKE) --no-print-directory helm-check

.PHONY: test-faults
test-faults: ## The fault suite alone: slow/failing profile, routing SIGKILL, Redis restart, paused scheduler, circuit breaker
	@scripts/ensure-deps.sh redis
	$(CARGO) build --workspace --bins
	$(CARGO) test -p rapport-e2e --test faults

.PHONY: helm-check
helm-check: ## Helm chart offline: lint, render, Kubernetes schemas, env/ports vs the binaries, bad values refused
	$(CARGO) build --workspace --bins
	python3 scripts/helm-check.py

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: train
train: ## Train the classification text model from data/classification/corpus.tsv
	$(CARGO) run -q -p rapport-classification --bin classification-train -- train

.PHONY: eval
eval: ## Per-class precision/recall and macro-F1 of classification on the held-out split
	$(CARGO) run -q -p rapport-classification --bin classification-train -- eval

.PHONY: clean
clean: ## Remove build output and demo state
	$(CARGO) clean
	rm -rf .demo

.PHONY: bench
bench: ## Release build, then the benchmark suite with its floors (≤ 15 min) → bench/results/latest.{md,json}
	@scripts/ensure-deps.sh redis
	$(CARGO) build --release --workspace --bins
	./target/release/rapport-bench --out bench/results $(BENCH_ARGS)

.PHONY: flamegraph
flamegraph: ## Flame graph of the whole mesh while RouteCall cycles run saturated (needs perf and inferno) → bench/results/flame-mesh.svg
	$(CARGO) build --release --workspace --bins
	scripts/flamegraph.sh

.PHONY: bench-1m
bench-1m: ## A million customers: import, point reads (SQLite and PostgreSQL), due-index rebuild, care-task claims (≈ 20 min) → bench/results/1m*.md
	@scripts/ensure-deps.sh redis postgres
	$(CARGO) build --release --workspace --bins --examples
	scripts/bench-1m.sh $(BENCH_1M_ARGS)
	scripts/bench-profile-postgres.sh $(BENCH_1M_ARGS) > bench/results/1m-postgres.md
	@cat bench/results/1m-postgres.md
