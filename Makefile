# The two commands of the README:
#   make up     install everything into .venv and node_modules, then run the hub
#   make test   install what the tests need (Chromium, Java), lint, run the suite
VENV     ?= .venv
PYTHON   ?= python3
SETTINGS ?= analysis-hub.yaml
BIN      := $(VENV)/bin

.PHONY: install system-deps up test lint format unit integration e2e images bench bench-pipelines lock clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian packages the tests use (the browser, Java for Spark); a no-op when present.
system-deps:
	scripts/install-system-deps.sh

up: install
	$(BIN)/analysis-hub up --config $(SETTINGS)

test: install system-deps lint images
	$(BIN)/pytest -p no:cacheprovider -ra

lint: install
	$(BIN)/ruff check hub tests scripts
	$(BIN)/ruff format --check hub tests scripts

format: install
	$(BIN)/ruff check --fix hub tests scripts
	$(BIN)/ruff format hub tests scripts

unit: install
	$(BIN)/pytest -p no:cacheprovider tests/unit

integration: install
	$(BIN)/pytest -p no:cacheprovider tests/integration

e2e: install system-deps
	$(BIN)/pytest -p no:cacheprovider tests/e2e

# Issue 7's benchmarks against vanilla JupyterHub; sizes: make bench BENCH_ARGS="--runs 3 --crowd-sizes 10"
bench: install
	$(BIN)/python tests/benchmarks/bench.py $(BENCH_ARGS)

bench-pipelines: install
	$(BIN)/python tests/benchmarks/pipelines.py

# Build the images (all, or IMAGES="pyspark hub") with content-addressed tags,
# written to build/image-tags.json for the docker backend. No registry is
# reachable here: the base comes from debootstrap, built once. The machine's
# CA bundle is passed as a BuildKit secret (TLS may be re-signed).
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
IMAGE_BUILD_ARGS ?= --base debootstrap $(if $(CA_BUNDLE),--ca-bundle $(CA_BUNDLE))
IMAGES ?=
images: install system-deps
	$(BIN)/python scripts/build_images.py --start-engine $(IMAGE_BUILD_ARGS) $(IMAGES)

# Re-resolve the images' lock files from their requirements.in.
lock: install
	PATH=$(BIN):$$PATH $(BIN)/python scripts/lock_images.py

clean:
	rm -rf $(VENV) node_modules .analysis-hub
