# kubectl dr — run `make help` for the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

# One version for every build output (binaries, archives, the agent image),
# semver as krew wants: the tag when HEAD has one, else v0.1.0-dev.g<commit>.
VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null || echo v0.1.0-dev.g$$(git rev-parse --short HEAD 2>/dev/null || echo unknown))
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.version=$(VERSION) \
           -X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.commit=$(COMMIT)
BIN     := _output/bin
# Generous: a cold machine builds etcd, kube-apiserver, kubectl, MinIO and
# restic before the first end-to-end test runs.
TEST_TIMEOUT ?= 60m
# The unit tests of the restic runner build restic first (TestMain): on a
# cold, loaded machine that alone took more than go test's default 10m.
UNIT_TIMEOUT ?= 25m

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build kubectl-dr and dr-agent into _output/bin
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/kubectl-dr ./cmd/dr-agent

.PHONY: test
test: ## Unit tests (with -race), each fuzz target for FUZZTIME_SHORT, then end-to-end tests against the lab (builds the lab's parts on first run)
	hack/setup.sh --with-browser
	go vet ./...
	go test -short -race -timeout $(UNIT_TIMEOUT) ./...
	hack/fuzz.sh $(FUZZTIME_SHORT)
	CHAOS_REPORT=$(CURDIR)/_output/chaos-report.txt go test -count=1 -p 1 -timeout $(TEST_TIMEOUT) ./test/...

.PHONY: setup
setup: ## Install the Debian packages the lab needs (as root), or print the command that would
	hack/setup.sh

.PHONY: test-unit
test-unit: ## Unit tests only, with -race (no lab)
	go test -short -race -timeout $(UNIT_TIMEOUT) ./...

.PHONY: chaos
chaos: ## The long chaos run: 200 seeded faults, then the invariants (CHAOS_SEED, CHAOS_FAULTS, CHAOS_TIMEOUT; see docs/lab.md)
	hack/chaos

# Each fuzz target for FUZZTIME (hack/fuzz.sh finds them all); make test
# fuzzes each for FUZZTIME_SHORT, on top of the checked-in seeds
# (testdata/fuzz/) that every plain go test runs.
FUZZTIME ?= 30s
FUZZTIME_SHORT ?= 5s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s)
	hack/fuzz.sh $(FUZZTIME)

.PHONY: dist
dist: ## The release archives .goreleaser.yaml defines, built without goreleaser into _output/dist (with checksums.txt), and krew/dr.yaml with their sha256
	go run ./hack/dist -version $(VERSION) -commit $(COMMIT) -out _output/dist

.PHONY: release-check
release-check: ## goreleaser check, then a snapshot release without publishing, images or SBOMs into _output/goreleaser (goreleaser built once into the lab cache)
	"$$(hack/release/tool.sh goreleaser)" check
	"$$(hack/release/tool.sh goreleaser)" release --snapshot --clean --skip=docker,sbom,publish

.PHONY: image
image: ## The dr-agent image (static dr-agent + restic + nsenter) as a tarball, no Docker needed: _output/dr-agent-image.tar
	IMAGE_TAG=ghcr.io/kubectl-dr/dr-agent:$(VERSION) DR_VERSION=$(VERSION) hack/lab image

.PHONY: demo
demo: ## The lab, then kubectl dr against it (see README)
	hack/setup.sh
	hack/demo.sh

.PHONY: lab-up
lab-up: ## Start the lab (idempotent); then: eval "$$(hack/lab env)"
	hack/setup.sh
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
	hack/bench/sqlite-snapshot.sh
	hack/bench/restic-files.sh
	hack/bench/wal-ship.sh
	hack/bench/bucket-copy.sh
	hack/bench/objects-restore.sh
	hack/bench/drill.sh

.PHONY: clean
clean: ## Remove build output (not the lab's binary cache)
	rm -rf $(BIN)
