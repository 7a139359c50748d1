# edgehost — see README.md. Every target installs what it needs on a fresh
# Debian machine with only Go and gcc.
GO      ?= go
BIN     := bin
PLUGINS := $(notdir $(wildcard plugins/*/main.go))
PLUGIN_DIRS := $(patsubst %/main.go,%,$(wildcard plugins/*/main.go))
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build programs run test test-short test-kvm bench bench-idle soak proto fuzz clean

all: build

build: programs
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/edgehost ./host
	@for d in $(PLUGIN_DIRS); do \
	  n=$$(basename $$d); \
	  echo "$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/edgehost-plugin-$$n ./$$d"; \
	  $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/edgehost-plugin-$$n ./$$d || exit 1; \
	done

# The compute plugin's example programs (static x86-64 ELF) in bin/programs;
# g++ and static glibc are installed when missing.
programs:
	@command -v g++ >/dev/null && [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || \
	  { sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq && $$sudo apt-get install -y -qq g++ libc6-dev; }
	$(MAKE) -s -C plugins/compute/examples OUT=$(CURDIR)/$(BIN)/programs

# Runs edgehost on config.hcl with a demo origin beside it (both stop on ^C).
run: build
	@scripts/run.sh

# Unit and integration tests (real edgehost processes, real origins, real
# plugin subprocesses, the status page in headless chromium — installed
# when missing), with the race detector — in the tests and in the
# edgehost and plugin binaries they start (bin/race).
test: build
	@scripts/chromium.sh
	@mkdir -p $(BIN)/race
	$(GO) build -race -ldflags '$(LDFLAGS)' -o $(BIN)/race/edgehost ./host
	@for d in $(PLUGIN_DIRS); do \
	  $(GO) build -race -ldflags '$(LDFLAGS)' -o $(BIN)/race/edgehost-plugin-$$(basename $$d) ./$$d || exit 1; \
	done
	EDGEHOST_BIN=$(CURDIR)/$(BIN)/race $(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

# KVM tests inside QEMU with nested KVM (no /dev/kvm needed on this machine).
test-kvm:
	scripts/test-kvm.sh

# Compares edgehost with Varnish / nginx on loopback (installs them and wrk);
# the last table is bench-idle's.
bench: build
	bench/run.sh
	bench/idle.sh

# Memory per idle keep-alive connection (10 000 of them) in edgehost,
# Varnish and nginx (issue 15).
bench-idle: build
	bench/idle.sh

# Soak (issue 13): the real edgehost against the demo origin for
# SOAK_DURATION (default 5m, at most 10m) under hits, misses, large objects,
# slow readers, idle and slowloris connections, purges, bans and a kill -9
# every SOAK_KILL_EVERY (1m); reports RSS over time, errors and objects lost
# across the kills, and fails past their bounds. Not part of make test.
soak: build
	$(GO) run ./test/soak -bin $(BIN)/edgehost

proto:
	scripts/proto.sh

fuzz:
	scripts/fuzz.sh

clean:
	rm -rf $(BIN) var
