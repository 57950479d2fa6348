# kubectl dr — run `make help` for the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.version=$(VERSION) \
           -X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.commit=$(COMMIT)
BIN     := _output/bin
# Generous: a cold machine builds etcd, kube-apiserver, kubectl, MinIO and
# restic before the first end-to-end test runs.
TEST_TIMEOUT ?= 60m

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build kubectl-dr and dr-agent into _output/bin
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/kubectl-dr ./cmd/dr-agent

.PHONY: test
test: ## Unit tests (with -race), then end-to-end tests against the lab (builds the lab's parts on first run)
	go vet ./...
	go test -short -race ./...
	CHAOS_REPORT=$(CURDIR)/_output/chaos-report.txt go test -count=1 -p 1 -timeout $(TEST_TIMEOUT) ./test/...

.PHONY: test-unit
test-unit: ## Unit tests only, with -race (no lab)
	go test -short -race ./...

.PHONY: chaos
chaos: ## The long chaos run: 200 seeded faults, then the invariants (CHAOS_SEED, CHAOS_FAULTS, CHAOS_TIMEOUT; see docs/lab.md)
	hack/chaos

# Each fuzz target for FUZZTIME (go test runs one -fuzz target at a time).
FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s)
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for t in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$pkg $$t"; go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# krew wants semver: untagged builds are v0.1.0-dev.g<commit>.
DIST_VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null || echo v0.1.0-dev.g$$(git rev-parse --short HEAD))

.PHONY: dist
dist: ## Release archives for linux/darwin/windows amd64+arm64 in _output/dist, and krew/dr.yaml with their sha256
	go run ./hack/dist -version $(DIST_VERSION) -commit $(COMMIT) -out _output/dist

.PHONY: image
image: ## The dr-agent image (static dr-agent + restic + nsenter) as a tarball, no Docker needed: _output/dr-agent-image.tar
	hack/lab image

.PHONY: demo
demo: ## The lab, then kubectl dr against it (see README)
	hack/demo.sh

.PHONY: lab-up
lab-up: ## Start the lab (idempotent); then: eval "$$(hack/lab env)"
	hack/lab up

.PHONY: lab-down
lab-down: ## Stop every process the lab started (data stays until make lab-clean)
	hack/lab down

.PHONY: lab-clean
lab-clean: lab-down ## Stop the lab and remove its directory
	hack/lab clean

.PHONY: generate
generate: ## Regenerate the gRPC code from api/**/*.proto
	hack/update-proto.sh

.PHONY: verify
verify: ## gofmt, go vet, go mod tidy and generated code are clean
	hack/verify.sh

.PHONY: bench
bench: ## Benchmarks against the tools users would otherwise run (see hack/bench)
	go test -run '^$$' -bench . -benchmem ./agent/... ./plugin/...
	hack/bench/status.sh
	hack/bench/etcd-snapshot.sh
	hack/bench/etcd-restore.sh
	hack/bench/restic-files.sh
	hack/bench/wal-ship.sh

.PHONY: clean
clean: ## Remove build output (not the lab's binary cache)
	rm -rf $(BIN)
