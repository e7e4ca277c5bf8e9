#!/usr/bin/env bash
# Runs the test suite against the lowest versions pyproject.toml accepts (torch 2.4, numpy 1.24,
# datasets 2.19, hydra-core 1.3.2, matplotlib 3.7, ...), so its ranges are checked, not guessed.
# Not part of CI: it downloads torch 2.4 from PyPI (a CUDA build, about 3 GB) into its own venv.
#
#   bash scripts/test_lowest_versions.sh [VENV]     (default /tmp/nmt-lowest; pytest arguments may follow)
#
# The packages that ours need are taken as they were when torch 2.4 came out (--exclude-newer): today's
# pyarrow needs numpy 2, so an environment of numpy 1.24 with today's pyarrow cannot import datasets.
# It needs python3.11: numpy 1.24 has no wheels for newer Pythons (pyproject's lowest Python is 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/nmt-lowest}
shift || true
command -v uv >/dev/null || python3 -m pip install -q uv
uv pip compile -q pyproject.toml --extra dev --resolution lowest-direct --exclude-newer 2024-08-15 \
  --python-version 3.11 -o "$venv.txt"
[ -x "$venv/bin/python" ] || uv venv -q -p python3.11 "$venv"
uv pip install -q -p "$venv/bin/python" -r "$venv.txt"
uv pip install -q -p "$venv/bin/python" --no-deps -e .
"$venv/bin/python" -c "import torch, numpy, datasets, hydra, matplotlib; print('torch', torch.__version__, \
'numpy', numpy.__version__, 'datasets', datasets.__version__, 'hydra', hydra.__version__, \
'matplotlib', matplotlib.__version__)"
MPLBACKEND=Agg "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
