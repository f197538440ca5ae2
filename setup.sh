#!/usr/bin/env bash
# One-stop set-up for dfsim on a fresh Debian machine with Python 3.11:
#   - the Fashion-MNIST dataset (Debian package dataset-fashion-mnist), if missing
#   - a virtual environment in .venv with dfsim (editable) and every dependency at the
#     version constraints.txt locks (a CPU build of torch among them), the documentation
#     site's tools included: `.venv/bin/mkdocs build --strict` builds the site into site/,
#     `.venv/bin/mkdocs serve` serves it while you edit
#   - dfsim's numba kernels compiled into numba's cache (a build step, like compiling a C
#     extension): the first run then does not spend ~30 s of CPU time compiling them
# Safe to run repeatedly; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
FMNIST_DIR=/usr/share/datasets/fashion-mnist

if [ -z "${DFSIM_FASHION_MNIST:-}" ] && [ ! -f "$FMNIST_DIR/t10k-images-idx3-ubyte.gz" ]; then
  echo "setup: installing Debian package dataset-fashion-mnist" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.dfsim-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing dependencies into .venv (versions from constraints.txt)" >&2
  .venv/bin/python -m pip install -q -c constraints.txt pip
  # torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
  .venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test,imagenet]"
  touch "$stamp"
fi

# numba recompiles a kernel whenever its source file changes; a fresh compile takes ~45 s,
# loading the cached kernels a few seconds.
compiled=.venv/.dfsim-precompiled
if [ ! -f "$compiled" ] || [ -n "$(find dfsim -name '*.py' -newer "$compiled" -print -quit)" ]; then
  echo "setup: compiling dfsim's numba kernels" >&2
  .venv/bin/dfsim precompile --quiet
  touch "$compiled"
fi
