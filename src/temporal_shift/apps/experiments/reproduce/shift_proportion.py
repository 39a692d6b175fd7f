"""``tsm reproduce shift-proportion``: how much of the channels to shift.

Arms: no shift (TSN), 1/16, 1/8, 1/4 (the paper's default, fold_div 8), 1/2 and all channels
shifted, on the shared recipe; plus the inference latency of each proportion against TSN with
identical weights, interleaved on this machine (`apps.bench.proportions.shift_latency`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporal_shift.apps.bench.proportions import PROPORTIONS, latency_panel, shift_latency
from temporal_shift.apps.experiments.recipe import DEMO_SEGMENTS, Arm
from temporal_shift.apps.experiments.reproduce import common

__all__ = ["NAME", "PROPORTIONS", "arms", "plot", "run", "shift_latency"]

NAME = "shift-proportion"


def arms() -> list[Arm]:
    """One arm per proportion of `PROPORTIONS` (group: the proportion)."""
    return [
        Arm(
            label=f"shift {label}",
            model={"shift": False} if fd is None else {"shift": True, "fold_div": fd},
            group=label,
        )
        for label, fd in PROPORTIONS
    ]


def run(setup: common.Setup) -> common.ExperimentResult:
    """Train and test every proportion's arm with every seed, time the proportions, write the
    results and the plot (accuracy and latency overhead against the proportion)."""
    started = time.perf_counter()
    chosen = arms()
    runs = common.run_arms(
        chosen,
        name=NAME,
        setup=setup,
    )
    summary = common.summarize_runs(runs, chosen)
    budget = setup.budget
    setup.log(
        f"[{NAME}] latency: {budget.bench_arch} {budget.bench_size}x{budget.bench_size}, "
        f"T={DEMO_SEGMENTS}, {budget.bench_repeats} interleaved rounds"
    )
    latency = shift_latency(
        arch=budget.bench_arch,
        size=budget.bench_size,
        n_segment=DEMO_SEGMENTS,
        repeats=budget.bench_repeats,
        device=setup.device,
    )
    table, notes = _table_and_notes(summary, latency)
    result = setup.result(
        NAME,
        runs=runs,
        summary=summary,
        table=table,
        notes=notes,
        extra={"latency": latency},
        seconds=time.perf_counter() - started,
    )
    return common.write_result(result, lambda path: plot(summary, latency, seeds=len(setup.seeds), path=path))


def _table_and_notes(summary: Sequence[dict[str, Any]], latency: dict[str, Any]) -> tuple[str, list[str]]:
    """The table (each proportion against 1/4, and its latency overhead against TSN) and the notes."""
    ref = next(r for r in summary if r["group"] == "1/4")
    tsn = summary[0]

    def overhead(row: dict[str, Any]) -> str:
        r = latency["per_proportion"][row["group"]]["ratio"]
        return f"{100 * (r['median'] - 1):+.1f}% ({100 * (r['q1'] - 1):+.1f}..{100 * (r['q3'] - 1):+.1f})"

    table = common.markdown_table(
        summary,
        extra=[
            ("vs 1/4 (top-1)", lambda row: "-" if row is ref else common.compare(row["top1"], ref["top1"])),
            (f"latency vs TSN ({latency['arch']}, {latency['size']}px)", overhead),
        ],
    )
    best = max(summary, key=lambda r: r["top1"]["mean"])
    notes = [
        f"best top-1: {best['arm']} ({common.format_stats(best['top1'])}); 1/4 vs no shift: "
        f"{common.compare(ref['top1'], tsn['top1'])}; "
        f"all channels vs 1/4: {common.compare(summary[-1]['top1'], ref['top1'])}",
        "latency: median of the per-round ratio to TSN (IQR), identical weights, batch 1, "
        f"{latency['device']}, {latency['threads']} threads",
    ]
    return table, notes


def plot(summary: Sequence[dict[str, Any]], latency: dict[str, Any], *, seeds: int, path: Path) -> Path:
    """Accuracy (mean ± sd over seeds) and latency overhead vs TSN (median, IQR) against the proportion."""
    plt = common.pyplot()
    fig, (acc, lat) = plt.subplots(1, 2, figsize=(11, 4))
    xs = list(range(len(summary)))
    labels = [r["group"] for r in summary]
    for key, label, style in (
        ("top1", "val top-1", "o-"),
        ("temporal_top1", "temporal pairs top-1", "s--"),
        ("order_acc", "order accuracy", "^:"),
    ):
        _errorbars(acc, xs, summary, key, fmt=style, label=label)
    acc.set_xticks(xs, labels)
    acc.set_xlabel("proportion of channels shifted")
    acc.set_ylabel(f"accuracy % ({common.over_seeds(seeds)})")
    acc.set_title("accuracy vs shift proportion")
    acc.legend(fontsize=8)
    latency_panel(lat, latency)
    return common.save_figure(fig, path)


def _errorbars(ax, xs, summary, key, **kwargs) -> None:
    means = [row[key]["mean"] for row in summary]
    sds = [row[key]["sd"] for row in summary]
    ax.errorbar(xs, means, yerr=sds, capsize=4, **kwargs)
