# vland — build, test, benchmark, demo.
GO      ?= go
BIN     := bin/vland
PKGS    := ./...
# Parallel test binaries; the suite must stay well inside CI's 90 minutes on 2 cores.
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build deps test unit cli-test bench demo vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/vland

# Installs, idempotently, every Debian package the tests need.
deps:
	./scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit:
	$(GO) test $(TESTFLAGS) $(PKGS)

cli-test: build
	./scripts/cli-test.sh $(BIN)
	./scripts/cli-test-core.sh $(BIN)
	./scripts/cli-test-secgroups.sh $(BIN)
	./scripts/cli-test-routers.sh $(BIN)

test: deps vet build unit cli-test

bench: build
	./scripts/bench.sh $(BIN)

demo: deps build
	./scripts/demo.sh $(BIN)

clean:
	rm -rf bin
