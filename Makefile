# berth: build, test and demo. `make demo` and `make test` do all the set-up a
# fresh Debian machine needs (apt-get when root, Go modules through the proxy).
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.gitCommit=$(COMMIT)
# Debian packages the build, tests and demo need.
DEB_PKGS := gcc libc6-dev pkg-config libseccomp-dev busybox-static iproute2 procps util-linux
# The peers the interop tests run berth against (make test installs them).
TEST_DEB_PKGS := podman skopeo umoci runc crun tar docker-registry
TEST_TIMEOUT ?= 20m

.PHONY: all build deps test-deps install-debs test unit vet demo clean bench fmt

all: build

build: deps
	@mkdir -p $(BIN)
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth-runtime ./cmd/berth-runtime
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth ./cmd/berth
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/berth-monitor ./cmd/berth-monitor
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/berth-init ./cmd/berth-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/berth-registry ./cmd/berth-registry

# deps installs what is missing and is silent when everything is there.
deps:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEB_PKGS)"
	@$(GO) mod download

# As another user the interop tests skip (saying why) instead.
test-deps: deps
	@$(MAKE) --no-print-directory install-debs PKGS="$(TEST_DEB_PKGS)" OPTIONAL=1
	@# Debian starts docker-registry as a service on :5000; the tests start
	@# their own on free ports, and 5000 may be another suite's.
	@if [ "$$(id -u)" = 0 ] && command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then \
		systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi

install-debs:
	@missing=""; for p in $(PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "missing Debian packages:$$missing (run make deps as root)" >&2; \
			if [ -n "$(OPTIONAL)" ]; then exit 0; fi; exit 1; \
		fi; \
		echo "installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $$missing >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null; }; \
	fi

vet: deps
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi

# Unit and integration tests. Integration tests need root and skip with the
# reason otherwise; they use the binaries built above.
test: build vet test-deps
	BERTH_BIN_DIR=$(BIN) $(GO) test -race -timeout $(TEST_TIMEOUT) -count=1 ./...

demo: build
	@./demo/run.sh $(BIN)

bench: build
	@./bench/run.sh $(BIN)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
