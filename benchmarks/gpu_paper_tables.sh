#!/usr/bin/env bash
# The paper's efficiency figures on a GPU in one command: `tsm bench compare all --device cuda` next to
# the paper's P100 column, and the shift-proportion latency panel (see gpu_paper_tables.py).
# Needs the package's dependencies (torch, torchvision, matplotlib); the package is taken from src/.
#
#   benchmarks/gpu_paper_tables.sh --out docs/gpu/h200-$(date +%F)   # on a CUDA machine: a few minutes
#   benchmarks/gpu_paper_tables.sh --smoke --out /tmp/tables        # CPU, toy sizes: checks the script
#
# PYTHON=/path/to/python picks the interpreter (default: python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$(dirname "$here")/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$here/gpu_paper_tables.py" "$@"
