"""``tsm reproduce placement``: where to shift.

Arms: residual shift (inside the residual branch) vs in-place shift (on the block's input,
every path) at 1/8, 1/4 and 1/2 of the channels, on the shared recipe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporal_shift.apps.experiments.recipe import Arm
from temporal_shift.apps.experiments.reproduce import common

NAME = "placement"
PROPORTIONS: tuple[tuple[str, int], ...] = (("1/8", 16), ("1/4", 8), ("1/2", 4))


def arms() -> list[Arm]:
    """Residual and in-place shift at each proportion of `PROPORTIONS` (group: the proportion)."""
    chosen = []
    for label, fd in PROPORTIONS:
        chosen.append(
            Arm(label=f"residual {label}", model={"shift": True, "fold_div": fd, "place": "blockres"}, group=label)
        )
        chosen.append(
            Arm(label=f"in-place {label}", model={"shift": True, "fold_div": fd, "place": "block"}, group=label)
        )
    return chosen


def run(setup: common.Setup) -> common.ExperimentResult:
    """Train and test both placements at every proportion with every seed, compare in-place with
    residual, write the results and the plot."""
    started = time.perf_counter()
    chosen = arms()
    runs = common.run_arms(
        chosen,
        name=NAME,
        setup=setup,
    )
    summary = common.summarize_runs(runs, chosen)
    by_label = {row["arm"]: row for row in summary}

    def vs_residual(row: dict[str, Any]) -> str:
        if row["model"]["place"] == "blockres":
            return "-"
        return common.compare(row["top1"], by_label[f"residual {row['group']}"]["top1"])

    table = common.markdown_table(summary, extra=[("in-place vs residual (top-1)", vs_residual)])
    notes = [
        f"{g}: in-place - residual = {vs_residual(by_label[f'in-place {g}'])}"
        for g, _ in PROPORTIONS
        if f"in-place {g}" in by_label and f"residual {g}" in by_label
    ]
    result = setup.result(
        NAME, runs=runs, summary=summary, table=table, notes=notes, extra={}, seconds=time.perf_counter() - started
    )
    return common.write_result(result, lambda path: plot(summary, seeds=len(setup.seeds), path=path))


def plot(summary: Sequence[dict[str, Any]], *, seeds: int, path: Path) -> Path:
    """Top-1 (mean ± sd over seeds) of residual and in-place shift, side by side per proportion."""
    by_label = {row["arm"]: row for row in summary}
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = [g for g, _ in PROPORTIONS if f"residual {g}" in by_label]
    width = 0.38
    for i, (place, colour) in enumerate((("residual", "tab:orange"), ("in-place", "tab:blue"))):
        rows = [by_label[f"{place} {g}"] for g in groups]
        xs = [k + (i - 0.5) * width for k in range(len(groups))]
        ax.bar(
            xs,
            [r["top1"]["mean"] for r in rows],
            width,
            yerr=[r["top1"]["sd"] for r in rows],
            capsize=4,
            label=f"{place} shift",
            color=colour,
        )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlabel("proportion of channels shifted")
    ax.set_ylabel(f"val top-1 % ({common.over_seeds(seeds)})")
    ax.set_ylim(0, 105)
    ax.set_title("residual vs in-place shift")
    ax.legend(fontsize=8)
    return common.save_figure(fig, path)
