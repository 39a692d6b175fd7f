"""The inference latency of each shift proportion against TSN, with identical weights.

TSN and TSM with 1/16, 1/8, 1/4 (the paper's default, fold_div 8), 1/2 and all channels shifted,
all with TSN's weights, one clip, timed in interleaved rounds on one device; per proportion
the median and IQR of the per-round ratio to TSN (the paper, on a P100: +3% at 1/4, +12.4% for a
naive shift of every channel). `tsm reproduce shift-proportion` draws it next to the accuracy;
benchmarks/gpu_paper_tables.sh measures it on a GPU. Needs only torch and torchvision (the plot:
matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PROPORTIONS: tuple[tuple[str, int | None], ...] = (
    ("0 (TSN)", None),
    ("1/16", 32),
    ("1/8", 16),
    ("1/4", 8),
    ("1/2", 4),
    ("1 (all)", 2),
)


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


def latency_panel(ax, latency: dict[str, Any]) -> None:
    """`shift_latency`'s overhead against TSN (median and IQR of the per-round ratio) per proportion, on ``ax``."""
    labels = [label for label, _ in PROPORTIONS if label in latency["per_proportion"]]
    xs = list(range(len(labels)))
    ratio = [latency["per_proportion"][g]["ratio"] for g in labels]
    med = [100 * (r["median"] - 1) for r in ratio]
    err = [[100 * (r["median"] - r["q1"]) for r in ratio], [100 * (r["q3"] - r["median"]) for r in ratio]]
    ax.errorbar(xs, med, yerr=err, fmt="o-", capsize=4, color="tab:red")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(xs, labels)
    ax.set_xlabel("proportion of channels shifted")
    ax.set_ylabel("latency overhead vs TSN % (median, IQR)")
    ax.set_title(f"{latency['arch']} {latency['size']}px T={latency['n_segment']}, {latency['device']}")


def plot_latency(latency: dict[str, Any], path: Path) -> Path:
    """The latency panel alone (`latency_panel`), as a PNG at ``path`` (120 dpi)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    latency_panel(ax, latency)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
