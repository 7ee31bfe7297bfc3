# kubeserve developer entry points. The README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# pip shows each download; no --quiet, so a long install is visibly progressing
PIP_INSTALL := $(BIN)/pip install --progress-bar on

.PHONY: setup setup-demo setup-node demo test lint unit bench bench-operator clean grpc-stubs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip

# Figures measured on a fresh clone (see README, "Quickstart"); they are said before the wait.
$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing kubeserve[demo] into $(VENV): the operator, the serving runtime and"
	@echo "    scikit-learn (about 580 MB; about 3 minutes with an empty pip cache)"
	$(PIP_INSTALL) -e '.[demo]'
	touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing kubeserve[dev] into $(VENV): every model format (PyTorch with its CUDA"
	@echo "    libraries), KServe, tritonclient, moto, schemathesis, matplotlib, lint and type"
	@echo "    checkers (about 7 GB; about 7 minutes with an empty pip cache on a fast network)"
	$(PIP_INSTALL) -e '.[dev]'
	touch $@ $(DEMO_STAMP)

## setup-demo: create .venv and install only what the demo needs (kubeserve[demo])
setup-demo: $(DEMO_STAMP)

## setup: create .venv and install kubeserve with every extra needed for tests and the demo
setup: $(STAMP)

## setup-node: (root) Debian packages, the node binaries and the images a real kubelet node runs
setup-node: setup
	$(BIN)/kubeserve cluster prepare-host
	$(BIN)/kubeserve cluster build --real-node
	$(BIN)/kubeserve image build pause runtime operator

## demo: install what the demo needs, then run the end-to-end demo and say what it did
demo: setup-demo
	$(BIN)/python -m kubeserve.demo

## lint: ruff (lint + format check) and mypy --strict over both packages and the tests
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	# each example folder on its own: their make_model.py files share one module name
	for example in examples/*/; do $(BIN)/mypy "$$example"*.py; done

## test: lint, type-check, then the whole pytest suite (cluster tests included)
test: lint
	$(BIN)/kubeserve cluster build
	$(BIN)/pytest

## bench: side-by-side benchmarks; JSON and PNG land in bench/results/
bench: setup
	$(BIN)/python bench/runtime.py

## bench-operator: the operator at scale on the local control plane (JSON and PNG in bench/results/)
bench-operator: setup
	$(BIN)/kubeserve cluster build
	$(BIN)/python bench/operator_scale.py

## grpc-stubs: regenerate the runtime's committed gRPC stubs from its .proto
grpc-stubs: setup
	$(BIN)/python -m kubeserve_runtime.grpc.stubs

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
