# nodeaction-operator

IMG ?= nodeaction-operator:latest
# Pinned tool versions; each is built from Go modules into bin/ on first use.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
# promtool and promqlrefs (test/monitoring reads PromQL with it) are built
# from hack/tools/prometheus, whose go.mod pins the Prometheus version.
PROMETHEUS_VERSION := $(shell awk '{for (i = 1; i < NF; i++) if ($$i == "github.com/prometheus/prometheus") print $$(i+1)}' hack/tools/prometheus/go.mod)
PROMTOOL ?= $(LOCALBIN)/promtool-$(PROMETHEUS_VERSION)
PROMQLREFS ?= $(LOCALBIN)/promqlrefs-$(PROMETHEUS_VERSION)
# envtest finds kube-apiserver, etcd and kubectl here (hack/build-controlplane.sh).
export KUBEBUILDER_ASSETS ?= $(LOCALBIN)/k8s

# The race detector is on for every package (the manager the kill test runs
# is built with it too): measured cost in docs/benchmarks.md.
GOTEST_FLAGS ?= -race

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods, and the time zones a NodeActionSet window accepts (from Go's tz database).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."
	go run ./hack/timezones > api/v1alpha1/zz_generated.timezones.go

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files differ from what is committed.
	@if [ -n "$$(git status --porcelain -- api config/crd config/rbac)" ]; then \
	  echo "generated files are stale; run 'make manifests generate' and commit:"; \
	  git status --porcelain -- api config/crd config/rbac; git diff --stat -- api config/crd config/rbac; exit 1; fi

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl from Go modules into bin/k8s (once).
	hack/build-controlplane.sh

TEST_LOG ?= bin/test.log
# Lines of the verbose test log worth seeing live: package results, failures
# and the fault tests' counts. The whole log stays in $(TEST_LOG).
TEST_SHOW = '^(ok |FAIL|panic:|--- FAIL)|^\s+--- FAIL|(kill test|fault matrix|leader election|fleet polling)( \([^)]*\))?:'

# The conformance suite, the fault matrix and the kill test run in each
# fakecloud test world (internal/fakecloud/testworlds.go): FAKECLOUD_ADVERSARIAL=1
# adds the faithful world and the adversarial seeds, FAKECLOUD_SEED=N runs
# only seed N (how a failure that names its seed is repeated).
.PHONY: test
test: verify-generated vet controlplane kustomize promtool ## Unit tests, the envtest suite against a real kube-apiserver and etcd, chart, plugin and alert tests.
	@mkdir -p $(dir $(TEST_LOG))
	go test $(GOTEST_FLAGS) ./... -count=1 -timeout 30m -v 2>&1 | tee $(TEST_LOG) | { grep --line-buffered -E $(TEST_SHOW) || true; } \
	  || { echo "--- failures (whole log: $(TEST_LOG)):"; grep -E -A40 -- '--- FAIL' $(TEST_LOG) | head -400; exit 1; }

WORLD_TESTS ?= TestConformance|TestFaultMatrix|TestKillManagerAtRandomPoints

.PHONY: test-worlds
test-worlds: controlplane ## The conformance suite, fault matrix and kill test in every fakecloud world (faithful, adversarial seeds).
	@mkdir -p $(dir $(TEST_LOG))
	FAKECLOUD_ADVERSARIAL=1 go test $(GOTEST_FLAGS) ./internal/provider/... ./controllers -run '^($(WORLD_TESTS))$$' -count=1 -timeout 60m -v 2>&1 | tee $(TEST_LOG) | { grep --line-buffered -E $(TEST_SHOW) || true; }

.PHONY: test-alerts
test-alerts: promtool ## Only the alert rules (promtool test rules) and the Grafana dashboard's queries.
	go test ./test/monitoring -count=1 -v

.PHONY: bench
bench: controlplane build ## Benchmarks against a local apiserver, fakecloud and the manager (docs/benchmarks.md).
	go run ./hack/bench

##@ Build

.PHONY: build
build: ## Build the manager, the kubectl plugin, fakecloud and localcluster (the demo's control plane) into bin/.
	go build -o bin/manager .
	go build -o bin/kubectl-nodeaction ./cmd/kubectl-nodeaction
	go build -o bin/fakecloud ./hack/fakecloud
	go build -o bin/localcluster ./hack/localcluster

.PHONY: run
run: manifests generate ## Run the manager against the cluster in ~/.kube/config.
	go run . 

.PHONY: docker-build
docker-build: ## Build the manager image IMG (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	docker push $(IMG)

.PHONY: build-installer
build-installer: manifests kustomize ## Write dist/install.yaml (namespace, CRDs, RBAC, admission policy, Deployment, Service) and dist/chart for IMG.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml
	$(MAKE) chart

.PHONY: chart
chart: kustomize ## Write the Helm chart dist/chart from config/ (hack/chartgen); test/chart checks it is current.
	@mkdir -p $(LOCALBIN)
	$(KUSTOMIZE) build config/default > $(LOCALBIN)/chart-install.yaml
	$(KUSTOMIZE) build config/prometheus > $(LOCALBIN)/chart-monitoring.yaml
	go run ./hack/chartgen --install $(LOCALBIN)/chart-install.yaml --monitoring $(LOCALBIN)/chart-monitoring.yaml --out dist/chart

VERSION ?=
.PHONY: krew
krew: ## Build the kubectl plugin for every platform and its krew manifest into dist/krew (VERSION=vX.Y.Z).
	go run ./hack/krew --version "$(VERSION)" --out dist/krew

##@ Demo

.PHONY: demo
demo: controlplane build ## Start a local apiserver+etcd, fakecloud and the manager; apply samples; show them reach Ready.
	hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop what make demo started.
	hack/demo.sh down

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: promtool
promtool: $(PROMTOOL) $(PROMQLREFS) ## Build promtool and promqlrefs from hack/tools/prometheus into bin/ (once).
$(PROMTOOL):
	@mkdir -p $(LOCALBIN)
	cd hack/tools/prometheus && go build -o $(PROMTOOL) github.com/prometheus/prometheus/cmd/promtool
$(PROMQLREFS):
	@mkdir -p $(LOCALBIN)
	cd hack/tools/prometheus && go build -o $(PROMQLREFS) ./promqlrefs

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $(KUSTOMIZE)
