"""``tsm reproduce shift-proportion``: how much of the channels to shift.

Arms: no shift (TSN), 1/16, 1/8, 1/4 (the paper's default, fold_div 8), 1/2 and all channels
shifted, on the shared recipe; plus the inference latency of each proportion against TSN with
identical weights, interleaved on this machine (`apps.bench.overhead.interleaved_latency`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.experiments.recipe import DEMO_SEGMENTS, Arm
from temporal_shift.apps.experiments.reproduce import common

NAME = "shift-proportion"
PROPORTIONS: tuple[tuple[str, int | None], ...] = (
    ("0 (TSN)", None),
    ("1/16", 32),
    ("1/8", 16),
    ("1/4", 8),
    ("1/2", 4),
    ("1 (all)", 2),
)


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


def shift_latency(
    *, arch: str, size: int, n_segment: int, repeats: int, device: str = "auto", warmup: int = 2
) -> dict[str, Any]:
    """Inference latency of TSN and TSM at every shift proportion (`PROPORTIONS`), all with
    TSN's weights, one clip, timed in interleaved rounds; per proportion the median and IQR
    of the per-round ratio to TSN."""
    from temporal_shift.apps.bench.overhead import interleaved_latency, summarize
    from temporal_shift.ops.runtime import resolve_device

    dev = resolve_device(device)
    fmt = torch.channels_last
    models = {
        k: m.to(dev).to(memory_format=fmt) for k, m in _models_with_tsn_weights(arch, n_segment=n_segment).items()
    }
    clips = torch.randn(1, n_segment, 3, size, size)
    clips = clips.to(dev).flatten(0, 1).contiguous(memory_format=fmt).view(clips.shape)
    times = interleaved_latency(models, clips, repeats=repeats, warmup=warmup)
    base = PROPORTIONS[0][0]
    rows = {}
    for label, _ in PROPORTIONS:
        ratios = [b / a for a, b in zip(times[base], times[label], strict=True)]
        rows[label] = {"latency_ms": summarize([t * 1e3 for t in times[label]]), "ratio": summarize(ratios)}
    return {
        "arch": arch,
        "size": size,
        "n_segment": n_segment,
        "batch_size": 1,
        "repeats": repeats,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "per_proportion": rows,
    }


def _models_with_tsn_weights(arch: str, *, n_segment: int) -> dict[str, torch.nn.Module]:
    """TSN and a TSM per proportion of `PROPORTIONS`, in eval mode, all with the same (TSN's) weights."""
    from temporal_shift.models.factory import build_model

    torch.manual_seed(0)
    tsn = build_model(arch, num_classes=400, n_segment=n_segment, shift=False).eval()
    plain = tsn.state_dict()
    models: dict[str, torch.nn.Module] = {}
    for label, fd in PROPORTIONS:
        if fd is None:
            models[label] = tsn
            continue
        tsm = build_model(arch, num_classes=400, n_segment=n_segment, shift=True, fold_div=fd).eval()
        # TSM's keys carry the shift wrapper's extra ``net`` level; the tensors are TSN's
        tsm.load_state_dict({key: plain[key.replace(".net.", ".")] for key in tsm.state_dict()})
        models[label] = tsm
    return models


def run(
    *,
    out_dir: Path,
    data_root: Path,
    budget: common.Budget,
    seeds: list[int],
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> common.ExperimentResult:
    """Train and test every proportion's arm with every seed, time the proportions, write the
    results and the plot (accuracy and latency overhead against the proportion)."""
    started = time.perf_counter()
    chosen = arms()
    runs = common.run_arms(
        chosen,
        name=NAME,
        out=out_dir,
        data_root=data_root,
        budget=budget,
        seeds=seeds,
        device=device,
        progress=progress,
        log=log,
        jobs=jobs,
        reuse=reuse,
    )
    summary = common.summarize_runs(runs, chosen)
    log(
        f"[{NAME}] latency: {budget.bench_arch} {budget.bench_size}x{budget.bench_size}, "
        f"T={DEMO_SEGMENTS}, {budget.bench_repeats} interleaved rounds"
    )
    latency = shift_latency(
        arch=budget.bench_arch,
        size=budget.bench_size,
        n_segment=DEMO_SEGMENTS,
        repeats=budget.bench_repeats,
        device=device,
    )
    table, notes = _table_and_notes(summary, latency)
    result = common.ExperimentResult(
        NAME,
        budget,
        seeds,
        runs,
        summary,
        table,
        notes,
        {"latency": latency},
        out_dir,
        seconds=time.perf_counter() - started,
    )
    return common.write_result(result, lambda path: plot(summary, latency, seeds=len(seeds), path=path))


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
    ratio = [latency["per_proportion"][g]["ratio"] for g in labels]
    med = [100 * (r["median"] - 1) for r in ratio]
    err = [[100 * (r["median"] - r["q1"]) for r in ratio], [100 * (r["q3"] - r["median"]) for r in ratio]]
    lat.errorbar(xs, med, yerr=err, fmt="o-", capsize=4, color="tab:red")
    lat.axhline(0, color="k", lw=0.8)
    lat.set_xticks(xs, labels)
    lat.set_xlabel("proportion of channels shifted")
    lat.set_ylabel("latency overhead vs TSN % (median, IQR)")
    lat.set_title(f"{latency['arch']} {latency['size']}px T={latency['n_segment']}, {latency['device']}")
    return common.save_figure(fig, path)


def _errorbars(ax, xs, summary, key, **kwargs) -> None:
    means = [row[key]["mean"] for row in summary]
    sds = [row[key]["sd"] for row in summary]
    ax.errorbar(xs, means, yerr=sds, capsize=4, **kwargs)
