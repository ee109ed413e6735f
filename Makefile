# The two commands of the README:
#   make up     install what running needs into .venv and node_modules, then run the hub
#   make test   install what the tests need too (the test extras, Chromium, Java), lint, run the suite
VENV     ?= .venv
PYTHON   ?= python3
SETTINGS ?= analysis-hub.yaml
BIN      := $(VENV)/bin

.PHONY: install test-install lab system-deps up test lint format unit integration e2e images bench bench-pipelines lock clean

install: $(VENV)/.installed node_modules/.installed lab
# The test extras (pytest, Playwright, Helm's engine, linters...): only the targets below that
# test, lint or build need them; `up` starts sooner without (issue 26).
test-install: install $(VENV)/.test-installed

# The JupyterLab extension (issue 15), a wheel every image and local environment installs:
# built from lab-extension/ with JupyterLab's npm toolchain (about 30 s cold, seconds after).
LAB_SOURCES := $(wildcard lab-extension/src/* lab-extension/schema/* lab-extension/style/* \
	lab-extension/analysis_hub_lab/*.py lab-extension/jupyter-config/*) \
	lab-extension/package.json lab-extension/package-lock.json lab-extension/pyproject.toml \
	lab-extension/tsconfig.json $(wildcard images/*/requirements.txt)
lab: lab-extension/dist/.built

lab-extension/dist/.built: $(LAB_SOURCES) scripts/build-lab-extension.sh
	scripts/build-lab-extension.sh
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
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

test: test-install system-deps lint images
	$(BIN)/pytest -p no:cacheprovider -ra

lint: test-install
	$(BIN)/ruff check hub tests scripts
	$(BIN)/ruff format --check hub tests scripts

format: test-install
	$(BIN)/ruff check --fix hub tests scripts
	$(BIN)/ruff format hub tests scripts

unit: test-install
	$(BIN)/pytest -p no:cacheprovider tests/unit

integration: test-install
	$(BIN)/pytest -p no:cacheprovider tests/integration

e2e: test-install system-deps
	$(BIN)/pytest -p no:cacheprovider tests/e2e

# Issue 7's benchmarks against vanilla JupyterHub; sizes: make bench BENCH_ARGS="--runs 3 --crowd-sizes 10"
bench: test-install
	$(BIN)/python tests/benchmarks/bench.py $(BENCH_ARGS)

bench-pipelines: test-install
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
	rm -rf $(VENV) node_modules .analysis-hub lab-extension/node_modules lab-extension/.venv lab-extension/dist
