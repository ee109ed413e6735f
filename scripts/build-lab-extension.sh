#!/usr/bin/env bash
# Build analysis-hub's JupyterLab extension (lab-extension/) into a wheel:
#   lab-extension/dist/analysis_hub_lab-<version>-py3-none-any.whl
# with JupyterLab's own toolchain: the npm packages pinned in lab-extension's
# package-lock.json (@jupyter/builder, @jupyterlab/core-meta) and the Python
# jupyter-builder that comes with the JupyterLab the images pin (one version in
# every images/*/requirements.txt), in a build-only venv, lab-extension/.venv.
# The wheel holds the prebuilt labextension (no node at run time) and the server
# extension; the images and the local environments install it. Nothing built is
# committed. Prints the labextension's and the wheel's sizes.
set -euo pipefail
cd "$(dirname "$0")/../lab-extension"
PYTHON=${PYTHON:-python3}

pins=$(sed -n 's/^jupyterlab==\([^ ]*\).*/\1/p' ../images/*/requirements.txt | sort -u)
if [ "$(echo "$pins" | wc -l)" -ne 1 ] || [ -z "$pins" ]; then
  echo "images/*/requirements.txt must pin one jupyterlab version; found: ${pins:-none}" >&2
  exit 1
fi
builder=$(sed -n 's/^jupyter-builder==\([^ ]*\).*/\1/p' ../images/*/requirements.txt | sort -u | head -1)

# The build venv: the images' JupyterLab (its jupyter-builder drives the npm builder).
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('jupyterlab') != '$pins')" 2>/dev/null; then
  rm -rf .venv
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "jupyterlab==$pins" ${builder:+"jupyter-builder==$builder"} "hatchling==1.33.0"
fi

if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
  npm ci --no-audit --no-fund
  touch node_modules/.installed
fi

rm -rf lib tsconfig.tsbuildinfo analysis_hub_lab/labextension dist
PATH="$PWD/.venv/bin:$PATH" npm run --silent build
.venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation . -w dist
echo "labextension: $(du -sk analysis_hub_lab/labextension | cut -f1) KB; wheel: $(du -k dist/*.whl | cut -f1) KB ($(basename dist/*.whl))"
