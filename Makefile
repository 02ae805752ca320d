# SimpleCI. The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin
# Every module of go.work, as package patterns.
PKGS = $(shell $(GO) list -m -f '{{.Path}}/...')

.PHONY: run build test test-unit proto proto-check lint bench bench-go fuzz services-up services-down clean

run: build ## all services in one process on the embedded default (SQLite, in-process bus, local runner)
	$(BIN)/simpleci dev

build:
	$(GO) build -o $(BIN)/simpleci ./services/simpleci/cmd/simpleci

test: ## every test, against a real PostgreSQL and a real Kafka started by deploy/local
	deploy/local/test.sh

test-unit: ## the tests that need no servers
	$(GO) test -count=1 $(PKGS)

proto: ## regenerate protobuf code with locally installed plugins
	deploy/local/proto.sh generate

proto-check: ## fail when the committed generated code is stale
	deploy/local/proto.sh check

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l libs services proto); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fuzz: ## every fuzz target for 2 minutes each
	deploy/local/fuzz.sh 2m

bench: ## the whole service from outside, embedded and split: latency, throughput, logs, memory (into docs/benchmarks.md)
	deploy/local/bench.sh

bench-go: ## every Go benchmark of every module (see docs/benchmarks.md)
	eval "$$(deploy/local/test-env.sh)" && $(GO) test -run '^$$' -bench . -benchmem $(PKGS)

services-up: ## start PostgreSQL and Kafka for local work
	deploy/local/test-env.sh >/dev/null

services-down:
	deploy/local/postgres.sh stop; deploy/local/kafka.sh stop

clean:
	rm -rf $(BIN) .simpleci-data
