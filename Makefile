# The project's entry points. Heavy build outputs live outside the
# checkout, so a fresh clone reuses them: Cargo's target dir is keyed by the
# toolchain, the control plane and the venv by what built them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

MOVIEAPP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/movieapp
RUST_KEY := $(shell rustc -vV 2>/dev/null | sha256sum | cut -c1-12)
export MOVIEAPP_CACHE
export CARGO_TARGET_DIR ?= $(MOVIEAPP_CACHE)/target-$(RUST_KEY)

.PHONY: help demo test env-up env-down env-status env-stress manifests lint bench chaos images real-node-up real-node-down test-real-node build lambda-package iam-policies

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: ## the main job: local environment, operator, a MovieApp, an api-worker
	@bash scripts/demo.sh

test: ## every test (unit, integration, end-to-end), starting what they need
	@bash scripts/test.sh

env-up: ## start the local environment; then: . .localenv/env.sh
	@bash tests/localenv/localenv.sh up

env-down: ## stop the local environment and whatever make demo started
	@bash tests/localenv/localenv.sh down

env-status: ## each process of the local environment and its health
	@bash tests/localenv/localenv.sh status

env-stress: ## CYCLES (20) env-up/env-down cycles, each with a 2-replica Deployment; figures in docs/reliability.md
	@bash tests/localenv/localenv.sh stress --cycles $(or $(CYCLES),20) --report docs/reliability.md

manifests: ## regenerate crds/ from the Rust types
	@bash scripts/manifests.sh

lint: ## fmt, clippy, chart, Terraform and Dockerfile linters
	@bash scripts/lint.sh

bench: ## benchmarks; results in docs/benchmarks.md
	@bash scripts/bench.sh

chaos: ## chaos scenarios (kills, AWS faults, restarts); figures in docs/reliability.md
	@bash scripts/chaos.sh

iam-policies: ## every shipped IAM policy to .localenv/iam/<role>.json (ACCOUNT, REGION, PREFIX, CLUSTER), and the Terraform templates
	cargo run --quiet --locked -p movieapp-operator -- iam-policies --templates terraform/modules/iam/policies
	cargo run --quiet --locked -p movieapp-operator -- iam-policies --out .localenv/iam \
	  --account $(or $(ACCOUNT),123456789012) --region $(or $(REGION),us-east-1) --prefix $(or $(PREFIX),movieapp-) \
	  --cluster $(or $(CLUSTER),default) \
	  --movieapp examples/movieapp.yaml

lambda-package: ## the api-worker's Lambda zip (bootstrap for provided.al2023, x86_64)
	@bash api-worker/lambda/package.sh

images: ## both images from the Dockerfile with buildah, run under the Pods' constraints, pushed to the local registry (after make env-up)
	@bash tests/images/test.sh

real-node-up: ## opt-in: a real node (kubelet, containerd, runc) beside kwok's, tainted movieapp.io/real-node (after make env-up; root; or LOCALENV_REAL_NODE=1 make env-up)
	@bash tests/localenv/real-node.sh up

real-node-down: ## stop the real node alone and remove its Pods' containers (make env-down stops it too)
	@bash tests/localenv/real-node.sh down

test-real-node: ## real Pods (make test runs it where the machine can): the api-worker by digest on the real node, Chromium through a port-forward, a moved tag rolled out
	@bash tests/localenv/real-node-test.sh

build: ## build the workspace
	cargo build --workspace --all-targets
