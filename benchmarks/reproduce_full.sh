#!/usr/bin/env bash
# The full-budget figures of docs/reproduce.md in one resumable command: shift-proportion, placement and
# online on the demo data at the full budget (the demo's 1440 steps a run), and the zoo on the camouflage
# data at 48 epochs (8640 steps a run: TSM learns that scene only after about 3600), SEEDS seeds; then each
# experiment's table, JSON and PNG are copied to docs/reproduce/<experiment>-full.* (the zoo's as
# zoo-camouflage-full.*). Interrupt it (Ctrl-C) and run it again, in as many sittings as it takes:
# finished runs are kept in OUT/runs and not trained again, an interrupted one resumes from its last.pt.
# Needs the package's dependencies (pip install -e .); the package is taken from src/.
#
#   benchmarks/reproduce_full.sh                          # 3 seeds: about 8 hours of a 2-core CPU (docs/reproduce.md)
#   SEEDS=5 benchmarks/reproduce_full.sh --device cuda    # on a GPU: 5 seeds
#
# OUT (default runs/reproduce-full), SEEDS (default 3), PYTHON (default python3); further arguments
# (--device, --jobs, --no-progress) go to both tsm reproduce commands.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
out="${OUT:-runs/reproduce-full}"
seeds="${SEEDS:-3}"
"$py" -m temporal_shift.cli reproduce shift-proportion placement online --budget full --seeds "$seeds" --out "$out" "$@"
"$py" -m temporal_shift.cli reproduce zoo --budget full --seeds "$seeds" --data camouflage --epochs 48 --out "$out" "$@"
for folder in shift-proportion placement online zoo-camouflage; do
    experiment="${folder%-camouflage}"
    cp "$out/$folder/results.md" "$root/docs/reproduce/$folder-full.md"
    cp "$out/$folder/results.json" "$root/docs/reproduce/$folder-full.json"
    cp "$out/$folder/$experiment.png" "$root/docs/reproduce/$folder-full.png"
done
echo "copied the tables, JSON and PNGs to $root/docs/reproduce/*-full.*"
