"""``tsm reproduce zoo``: accuracy against compute of every model family.

Arms: TSN, TSM and every other family of `temporal_shift.models.factory.FAMILIES` that is
installed, on the shared recipe; plotted as accuracy vs GMACs (bubble area = params). A
family that cannot take the recipe's input is listed with the reason, never dropped silently.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporal_shift.apps.experiments.recipe import DEMO_SEGMENTS, DEMO_SIZE, Arm, frame_size
from temporal_shift.apps.experiments.reproduce import common
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.factory import FAMILIES

NAME = "zoo"
_COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def families() -> dict[str, type[ClipClassifier]]:
    """Every model family (`temporal_shift.models.factory.FAMILIES`)."""
    return dict(FAMILIES)


def arms(installed: dict[str, type[ClipClassifier]], *, n_segment: int) -> tuple[list[Arm], list[dict[str, str]]]:
    """TSN and TSM, then one arm per other family (ResNet-18 trunk where the family takes it,
    else its first arch), checked against the family's own ``check_config``; the families
    that cannot take the recipe are returned with the reason."""
    from temporal_shift.models.config import ModelConfig

    chosen = [
        Arm(label="TSN", model={"shift": False}, group="tsn"),
        Arm(label="TSM", model={"shift": True}, group="tsn"),
    ]
    not_run = []
    for family, cls in installed.items():
        if family == "tsn":
            continue
        arch = "resnet18" if "resnet18" in cls.archs else cls.archs[0]
        model: dict[str, Any] = {"family": family, "arch": arch, "shift": False}  # as Arm.model: ModelConfig fields
        try:
            cls.check_config(ModelConfig(num_classes=12, n_segment=n_segment, **model))
        except (TypeError, ValueError) as exc:
            not_run.append({"family": family, "reason": str(exc)})
            continue
        chosen.append(Arm(label=f"{family} ({arch})", model=model, group=family))
    return chosen, not_run


def run(setup: common.Setup) -> common.ExperimentResult:
    """Train and test every family that takes the recipe with every seed (a family whose run fails
    joins the ones not run, with the reason), compare each with TSM, write the results and the plot."""
    started = time.perf_counter()
    installed = families()
    chosen, not_run = arms(installed, n_segment=DEMO_SEGMENTS)
    runnable = [arm for arm in chosen if not any(n["family"] == arm.group for n in not_run)]
    # a family other than TSN/TSM may fail on the recipe's input (e.g. a 3D network whose pooling needs larger inputs)
    runs = common.run_arms(
        runnable,
        name=NAME,
        setup=setup,
        tolerate=lambda arm: arm.group != "tsn",
    )
    for failed in [r for r in runs if "error" in r]:
        if not any(n["family"] == failed["group"] for n in not_run):
            not_run.append({"family": failed["group"], "reason": failed["error"]})
    runs = [r for r in runs if not any(n["family"] == r["group"] for n in not_run)]
    ran = [a for a in chosen if any(r["arm"] == a.label for r in runs)]
    summary = common.summarize_runs(runs, ran)
    tsm = next(r for r in summary if r["arm"] == "TSM")
    table = common.markdown_table(
        summary,
        extra=[
            ("vs TSM (top-1)", lambda row: "-" if row is tsm else common.compare(row["top1"], tsm["top1"])),
        ],
    )
    notes = [f"families ran: {', '.join(sorted({a.group for a in ran}))} (installed: {', '.join(installed)})"]
    notes += [f"not run: {n['family']}: {n['reason']}" for n in not_run]
    result = setup.result(
        NAME,
        runs=runs,
        summary=summary,
        table=table,
        notes=notes,
        extra={"not_run": not_run},
        seconds=time.perf_counter() - started,
    )
    size = frame_size(setup.data_root)
    return common.write_result(result, lambda path: plot(summary, seeds=len(setup.seeds), path=path, size=size))


def plot(summary: Sequence[dict[str, Any]], *, seeds: int, path: Path, size: int = DEMO_SIZE) -> Path:
    """The zoo's accuracy vs GMACs bubbles (area: parameters) from its summary rows, top-1 on the
    left and order accuracy (the temporal pairs' order alone; 50% is blind to it) on the right;
    TSM in orange, TSN in grey, every other family a colour of its own; ``size``: the frames'."""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    biggest = max(r["params_m"] for r in summary)
    for ax, (key, label) in zip(axes, (("top1", "val top-1 %"), ("order_acc", "order accuracy %")), strict=True):
        others = itertools.cycle(_COLOURS)
        for row in summary:
            colour = "tab:orange" if row["arm"] == "TSM" else ("tab:grey" if row["arm"] == "TSN" else next(others))
            ax.scatter(
                row["gmacs"],
                row[key]["mean"],
                s=60 + 1500 * row["params_m"] / biggest,
                alpha=0.5,
                color=colour,
                edgecolors="k",
            )
            ax.errorbar(row["gmacs"], row[key]["mean"], yerr=row[key]["sd"], color="k", capsize=3, lw=0.8)
            ax.annotate(
                f"{row['arm']}\n{row['params_m']:.1f}M",
                (row["gmacs"], row[key]["mean"]),
                fontsize=7,
                xytext=(6, 6),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"GMACs per clip (T={DEMO_SEGMENTS}, {size}x{size}; log scale)")
        ax.set_ylabel(f"{label} ({common.over_seeds(seeds)})")
    axes[1].axhline(50.0, color="grey", lw=0.8, ls=":")
    fig.suptitle("accuracy vs compute (bubble area: parameters)")
    return common.save_figure(fig, path)
