# Vigil — build, run, test, benchmark.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/vigil
ARGS     ?=
# Packages whose tests need nothing but Go and PostgreSQL.
PKGS     := ./...

.PHONY: all help build run demo test vet lint fmt-check bench bench-ingest bench-traces bench-logs bench-promql bench-alerting bench-servicemap bench-scrape fuzz clean

all: build

## help: list the targets and what each does
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); n = index($$0, ": "); printf "  %-13s %s\n", substr($$0, 1, n - 1), substr($$0, n + 2); doc = 1; next } \
		/^## / && doc { sub(/^## /, ""); printf "  %-13s %s\n", "", $$0; next } { doc = 0 }' $(MAKEFILE_LIST)

# The web UI: its build output (dist/app, git-ignored) is embedded by web/ui;
# it is rebuilt only when a source is newer than the output.
.PHONY: ui ui-test bench-ui
UI_DIR   := web/ui
UI_STAMP := $(UI_DIR)/dist/app/index.html
UI_SRC   := $(shell find $(UI_DIR)/src $(UI_DIR)/public -type f 2>/dev/null) $(wildcard $(UI_DIR)/index.html \
	$(UI_DIR)/package.json $(UI_DIR)/package-lock.json $(UI_DIR)/vite.config.ts $(UI_DIR)/tsconfig.json)

## build: bin/vigil, with the web UI embedded
build: $(UI_STAMP)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

## run: start Vigil with a managed local PostgreSQL in ./data (or set VIGIL_DB / ARGS="--db postgres://...")
run: build
	./$(BIN) serve $(ARGS)

## demo: Vigil with a managed PostgreSQL plus the client's demo fleet exporting to it, registered in Vigil's
## registry (the gateway discovers user-service through it; Vigil scrapes the instances)
demo: build
	cd client && $(GO) build -o ../bin/vigil-demo ./cmd/vigil-demo
	./$(BIN) serve $(ARGS) & vigil=$$!; trap 'kill $$vigil; wait $$vigil' EXIT INT TERM; \
	for i in $$(seq 1 60); do curl -sf localhost:8080/readyz >/dev/null 2>&1 && break; sleep 1; done; \
	./bin/vigil-demo --otlp-endpoint 127.0.0.1:4317 --consul-addr 127.0.0.1:8500 --load 20

## ui: build the web UI (npm ci && npm run build in web/ui)
ui: $(UI_STAMP)

$(UI_STAMP): $(UI_SRC)
	cd $(UI_DIR) && npm ci && npm run build
	@touch $@

## ui-test: the UI's unit tests (vitest)
ui-test:
	cd $(UI_DIR) && { [ -d node_modules ] || npm ci; } && npm test

## test: formatting, vet, lint, the UI's unit tests, and every Go test (browser tests included) against a real PostgreSQL
test: fmt-check vet lint $(UI_STAMP) ui-test
	$(GO) test -count=1 -timeout 10m $(PKGS)
	@if [ -f client/go.mod ]; then cd client && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...; fi

## vet: go vet over the server's packages
vet:
	$(GO) vet $(PKGS)

# golangci-lint at a pinned version, built with go install into bin/ (the
# module proxy serves it), so a fresh machine needs nothing else.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := bin/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	@mkdir -p bin/tools
	GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv bin/tools/golangci-lint $@

## lint: golangci-lint (pinned, see .golangci.yml) over the server's packages and the client module
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run --timeout 10m $(PKGS)
	if [ -f client/go.mod ]; then cd client && $(CURDIR)/$(GOLANGCI_LINT) run --timeout 10m --config $(CURDIR)/.golangci.yml ./...; fi

## fmt-check: fail when a Go file is not gofmt-formatted
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the figures of docs/benchmarks.md (heavy; needs PostgreSQL)
bench: bench-ingest bench-traces bench-logs bench-promql bench-alerting bench-servicemap bench-scrape
	$(GO) test -run '^$$' -bench . -benchmem ./storage/... ./web/... ./ingest/...
	@if [ -f client/go.mod ]; then cd client && $(GO) test -run '^$$' -bench . -benchmem ./...; fi

## bench-ingest: end to end, each against a baseline of the same run: traces (OTLP vs raw COPY,
## bytes per span, query latency), Jaeger/Zipkin receivers vs OTLP, logs (OTLP vs raw COPY, search, tail),
## metrics (remote_write vs raw COPY, bytes per sample before and after compaction), memory (peak RSS under
## 64 concurrent maximum-size requests and 64 trickling ones, against GOMEMLIMIT)
bench-ingest: build
	$(GO) run ./cmd/vigil-bench -signal traces $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal jaeger $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal logs $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal metrics $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal memory $(BENCH_ARGS)

## bench-logs: the log path at 10 M records: OTLP ingest vs raw COPY, bytes per record before and after
## compaction into blocks, the compaction rate, and search, trace-id and histogram latency right after the
## ingest, after VACUUM and after compaction (~35 min)
bench-logs: build
	$(GO) run ./cmd/vigil-bench -signal logs -spans 10000000 -max-duration 15m $(BENCH_ARGS)

## bench-traces: trace ingest (against raw COPY), bytes per span and the per-filter search table (p50/p99 of
## service + one filter, limit 20) with TRACE_SPANS spans in the last hour, then TRACE_SPANS spread over 24 h
## and searched over 24 h; TRACE_SPANS=1000000 for a quick run
TRACE_SPANS ?= 10000000
bench-traces: build
	$(GO) run ./cmd/vigil-bench -signal traces -spans $(TRACE_SPANS) -max-duration 10m -queries 100 $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal traces -spans $(TRACE_SPANS) -max-duration 10m -queries 100 -spread 24h $(BENCH_ARGS)

## bench-alerting: fault-to-webhook latency of Vigil against Debian's Prometheus 2.42 + Alertmanager 0.25
## fed the same samples; 1,000 rules over 10,000 series every 15 s (group and round durations, CPU per round)
bench-alerting: build
	$(GO) run ./cmd/vigil-bench -signal alerting $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal rules $(BENCH_ARGS)

## bench-servicemap: span ingest with the span-derived series (RED, service graph, map rollups) off and on,
## alternately, in the same run; the map and dependencies over 200 services / 1,000 edges, last 1 h and 24 h
bench-servicemap: build
	$(GO) run ./cmd/vigil-bench -signal derive $(BENCH_ARGS)
	$(GO) test -run '^$$' -bench 'BenchmarkMap' -benchtime 30x -timeout 30m -v ./storage/postgres/mapstore/ ./query/servicemap/

## bench-scrape: 1,000 targets x 500 series every 15 s scraped by Vigil and, in the same run, by Prometheus's scrape
## manager into its own TSDB; the registry with 1,000 instances and 10 s HTTP checks, blocking-query wake-up
bench-scrape: build
	$(GO) run ./cmd/vigil-bench -signal scrape $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal registry $(BENCH_ARGS)

## bench-promql: query_range over 1,000 series x 6 h on PostgreSQL (raw, compacted) vs Prometheus's TSDB
bench-promql:
	$(GO) test -run '^$$' -bench BenchmarkRangeQuery -benchtime 20x -timeout 30m -v ./query/promql/

## bench-ui: the web UI figures of docs/benchmarks.md: gzipped first-load bundle, first render of
## 1,000- and 10,000-span traces in headless Chromium (needs PostgreSQL and chromium)
bench-ui: $(UI_STAMP)
	@cd $(UI_DIR)/dist/app && for f in index.html assets/*.js assets/*.css; do gzip -9c $$f | wc -c; done | \
		awk '{ s += $$1 } END { printf "first-load bundle: %d bytes gzipped (%.1f KiB)\n", s, s / 1024 }'
	@out=$$($(GO) test -count=1 -run '^$$' -bench '^BenchmarkUITraceRender$$' -benchtime 1x -v -timeout 10m ./cmd/vigil/ 2>&1); rc=$$?; \
		echo "$$out" | grep -E 'spans: first render|^(ok|FAIL|---)|_test.go'; exit $$rc

## fuzz: run each fuzzer for FUZZTIME and keep what it finds in testdata/
FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

## clean: remove bin/
clean:
	rm -rf bin
