# Vigil — build, run, test, benchmark.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/vigil
ARGS     ?=
# Packages whose tests need nothing but Go and PostgreSQL.
PKGS     := ./...

.PHONY: all build run demo test vet fmt-check bench bench-ingest fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

## run: start Vigil with a managed local PostgreSQL in ./data (or set VIGIL_DB / ARGS="--db postgres://...")
run: build
	./$(BIN) serve $(ARGS)

## demo: Vigil with a managed PostgreSQL plus the client's demo fleet exporting to it
demo: build
	cd client && $(GO) build -o ../bin/vigil-demo ./cmd/vigil-demo
	./$(BIN) serve $(ARGS) & vigil=$$!; trap 'kill $$vigil; wait $$vigil' EXIT INT TERM; \
	for i in $$(seq 1 60); do curl -sf localhost:8080/readyz >/dev/null 2>&1 && break; sleep 1; done; \
	./bin/vigil-demo --otlp-endpoint 127.0.0.1:4317 --load 20

## test: formatting, vet, and every test against a real PostgreSQL
test: fmt-check vet
	$(GO) test -count=1 -timeout 10m $(PKGS)
	@if [ -f client/go.mod ]; then cd client && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...; fi

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the figures of docs/benchmarks.md (heavy; needs PostgreSQL)
bench: bench-ingest
	$(GO) test -run '^$$' -bench . -benchmem ./storage/... ./web/... ./ingest/...
	@if [ -f client/go.mod ]; then cd client && $(GO) test -run '^$$' -bench . -benchmem ./...; fi

## bench-ingest: end to end, each against a baseline of the same run: traces (OTLP vs raw COPY,
## bytes per span, query latency), Jaeger/Zipkin receivers vs OTLP, logs (OTLP vs raw COPY, search, tail)
bench-ingest: build
	$(GO) run ./cmd/vigil-bench -signal traces $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal jaeger $(BENCH_ARGS)
	$(GO) run ./cmd/vigil-bench -signal logs $(BENCH_ARGS)

## fuzz: run each fuzzer for FUZZTIME and keep what it finds in testdata/
FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
