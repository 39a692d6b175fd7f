#!/usr/bin/env bash
# Every GPU figure of the TSM/TSN overhead table (docs/performance.md) in one command; prints the table.
# Needs only torch + torchvision: the package is taken from src/ (PYTHONPATH), nothing installed.
#
#   benchmarks/gpu_overhead.sh                 # on a CUDA machine: all rows, under 5 minutes
#   benchmarks/gpu_overhead.sh --smoke         # CPU, toy sizes: checks the script end to end
#   benchmarks/gpu_overhead.sh --rows infer-b1,infer-b1-graph --out runs/gpu
#
# PYTHON=/path/to/python picks the interpreter (default: python3). See gpu_overhead.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$(dirname "$here")/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$here/gpu_overhead.py" "$@"
