"""The TSM paper's efficiency table, measured: the comparison models side by side on one device.

`tsm bench compare tsm,i3d_r50,eco_lite,...` builds each named model (random weights:
the cost does not depend on them), counts its parameters and multiply-adds (GMACs, as the
papers count them: convolutions and linear layers, one multiply-add per weight use, by
`torch.utils.flop_counter`), then times all of them in interleaved rounds on one device:
latency at batch 1 and throughput (videos/s) at a larger batch. Each round times every
model once, the order rotating from round to round, so all models see the same machine
state; a model's latency ratio to TSM is taken per round, which is the figure that
survives a noisy machine. The paper's published column is printed next to ours.

Published figures (`Published.source` says where each was read): the TSM paper (Lin, Gan,
Han, ICCV 2019), Table 5 (efficiency, one Tesla P100, batch 1 latency) and Table 3
(Something-Something V1, ensembles); C3D from Tran et al. 2015 as the later literature
counts it. Rows of `PUBLISHED_ONLY` (I3D+GCN, ECO-En, the TSM ensemble) are printed from
the papers and marked "not run": no public code (GCN) or an ensemble of models that are
measured separately.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from temporal_shift.apps.bench.overhead import count_flops, count_params, interleaved_latency, summarize
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.factory import build_model
from temporal_shift.ops.runtime import resolve_device

TSM_TABLE5 = "TSM paper (ICCV 2019) Table 5, Tesla P100, batch 1"
TSM_TABLE3 = "TSM paper (ICCV 2019) Table 3, Something-Something V1"


@dataclasses.dataclass(frozen=True)
class Published:
    """A row of a paper's table; None where the paper gives no figure."""

    gmacs: float | None
    params_m: float | None
    latency_ms: float | None = None
    videos_per_s: float | None = None
    source: str = ""


@dataclasses.dataclass(frozen=True)
class Contender:
    """A model of the comparison: how to build it, at which input, and what was published."""

    description: str
    options: dict[str, Any]  # build_model's arch and options (family, n_segment, shift, ...)
    published: Published | None = None
    reference: str | None = None  # the TSM contender the paper compares it with

    @property
    def frames(self) -> int:
        return int(self.options["n_segment"])


# The models `tsm bench compare` can name. Sizes: each model's published input (its class's input_size).
# ``reference``: the TSM model the paper compares it with (latency ratios are taken to it).
CONTENDERS: dict[str, Contender] = {
    "tsm": Contender(
        "TSM ResNet-50, 8 frames",
        dict(arch="resnet50", n_segment=8, shift=True),
        Published(33, 24.3, 17.4, 77.4, TSM_TABLE5),
    ),
    "tsm16": Contender(
        "TSM ResNet-50, 16 frames",
        dict(arch="resnet50", n_segment=16, shift=True),
        Published(65, 24.3, 29.0, 39.5, TSM_TABLE5),
    ),
    "tsn": Contender(
        "TSN ResNet-50, 8 frames (2D, average of frame scores)",
        dict(arch="resnet50", n_segment=8, shift=False),
        Published(33, 24.3, None, None, TSM_TABLE3 + " (TSN row)"),
        "tsm",
    ),
    "single_frame": Contender(
        "2D ResNet-50 on the centre frame", dict(arch="resnet50", family="single_frame", n_segment=8), None, "tsm"
    ),
    "late_fusion": Contender(
        "Karpathy late fusion, ResNet-50 trunk, 8 frames",
        dict(arch="resnet50", family="late_fusion", n_segment=8),
        None,
        "tsm",
    ),
    "early_fusion": Contender(
        "Karpathy early fusion, ResNet-50 trunk, 8 frames",
        dict(arch="resnet50", family="early_fusion", n_segment=8),
        None,
        "tsm",
    ),
    "slow_fusion": Contender(
        "Karpathy slow fusion, ResNet-50 trunk, 10 frames",
        dict(arch="resnet50", family="slow_fusion", n_segment=10),
        None,
        "tsm",
    ),
    "c3d": Contender(
        "C3D, 16 frames at 112x112",
        dict(arch="c3d", family="c3d", n_segment=16),
        Published(
            38.5,
            80.0,
            None,
            None,
            "C3D (Tran et al. 2015) Sports-1M network: 38.5 GMACs as quoted by Tran et al. "
            "2017; parameters of its Caffe release (487 classes)",
        ),
        "tsm16",
    ),
    "i3d_r50": Contender(
        "I3D ResNet-50 of the non-local paper: 32 input frames, 8 time steps after its stem",
        dict(arch="resnet50", family="i3d", n_segment=32),
        Published(33, 29.3, 25.8, 42.4, TSM_TABLE5 + ", 'I3D from [non-local]', 8 frames"),
        "tsm",
    ),
    "i3d_r50_8f": Contender(
        "I3D ResNet-50 fed 8 frames (1 time step from res3 on)",
        dict(arch="resnet50", family="i3d", n_segment=8),
        None,
        "tsm",
    ),
    "eco": Contender(
        "ECO (3D head + 2D branch), 16 frames",
        dict(arch="resnet18", family="eco_full", n_segment=16),
        Published(64, 47.5, 30.6, 45.6, TSM_TABLE5 + ", 'ECO 16F'"),
        "tsm16",
    ),
    "eco_8f": Contender(
        "ECO (3D head + 2D branch), 8 frames",
        dict(arch="resnet18", family="eco_full", n_segment=8),
        Published(32, 47.5, None, None, TSM_TABLE3 + ", 'ECO 8f'"),
        "tsm",
    ),
    "eco_lite": Contender(
        "ECO-Lite (2D trunk + 3D ResNet-18 head), 16 frames",
        dict(arch="resnet18", family="eco_lite", n_segment=16),
        None,
        "tsm16",
    ),
    "eco_lite_8f": Contender("ECO-Lite, 8 frames", dict(arch="resnet18", family="eco_lite", n_segment=8), None, "tsm"),
}

# Rows printed from the papers only: not models of ours (see the module doc).
PUBLISHED_ONLY: dict[str, tuple[str, Published]] = {
    "i3d_gcn": (
        "Non-local I3D + GCN (Wang & Gupta 2018), 32 frames x 2 clips; no public code",
        Published(606, 62.2, None, None, TSM_TABLE3),
    ),
    "i3d_wang_gupta": (
        "I3D ResNet-50 of Wang & Gupta 2018, 32 frames",
        Published(306, 35.3, 165.3, 6.1, TSM_TABLE5 + ", 'I3D from [Wang & Gupta 2018]'"),
    ),
    "eco_en": ("ECO-En Lite ensemble, 92 frames", Published(267, 150, None, None, TSM_TABLE3)),
    "tsm_en": ("TSM ensemble, 8 + 16 frames", Published(98, 48.6, None, None, TSM_TABLE3)),
}

DEFAULT_COMPARE = ("tsm", "tsm16", "tsn", "i3d_r50", "eco", "c3d")


def parse_names(spec: str) -> list[str]:
    """``"tsm,i3d_r50"`` -> the names, checked; ``"all"``: every contender (each names a
    registered family: tests/test_bench_compare.py builds them all)."""
    if spec.strip() == "all":
        return list(CONTENDERS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no model names in {spec!r}: give e.g. tsm,i3d_r50,eco_lite (or 'all')")
    for name in names:
        if name in PUBLISHED_ONLY:
            raise ValueError(
                f"{name}: published figures only, not a model we can run (it is printed under the table anyway)"
            )
        if name not in CONTENDERS:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(CONTENDERS)}, all")
    if len(set(names)) != len(names):
        raise ValueError(f"a model is named twice: {spec}")
    return names


def build_contender(name: str, *, num_classes: int = 400, seed: int = 0) -> ClipClassifier:
    torch.manual_seed(seed)
    options = dict(CONTENDERS[name].options)
    return build_model(options.pop("arch"), num_classes=num_classes, **options).eval()


@dataclasses.dataclass
class CompareResult:
    device: str
    threads: int
    batch_size: int  # throughput batch
    repeats: int
    sizes: dict[str, int]
    frames: dict[str, int]
    params: dict[str, int]
    gmacs: dict[str, float]  # per video (one clip)
    latency_ms: dict[str, dict[str, float]]  # batch 1
    videos_per_s: dict[str, float]  # batch ``batch_size``
    ratio_to_tsm: dict[str, dict[str, Any]]  # latency ratio to the TSM of equal frames, per round
    published: dict[str, dict[str, Any] | None]
    samples_ms: dict[str, list[float]]
    throughput_samples_ms: dict[str, list[float]]

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["published_only"] = {n: dict(dataclasses.asdict(p), description=d) for n, (d, p) in PUBLISHED_ONLY.items()}
        return json.dumps(data, indent=2)

    def table(self) -> str:
        def f(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines = [
            f"{self.device}, {self.threads} threads, latency at batch 1 ({self.repeats} interleaved rounds), "
            f"throughput at batch {self.batch_size}; published: their paper's device (P100 for TSM's table)",
            f"{'model':<14}{'T':>3}{'px':>5}{'params M':>10}{'GMACs':>8}{'lat ms':>9}{'IQR':>15}{'videos/s':>10}"
            f"{'x TSM':>8}  | {'pub GMACs':>9}{'params':>8}{'lat ms':>8}{'V/s':>7}",
        ]
        for name in self.params:
            lat, pub, ratio = self.latency_ms[name], self.published[name] or {}, self.ratio_to_tsm.get(name)
            ratio_median = ratio["median"] if ratio else None
            lines.append(
                f"{name:<14}{self.frames[name]:>3}{self.sizes[name]:>5}{self.params[name] / 1e6:>10.1f}"
                f"{self.gmacs[name]:>8.1f}{lat['median']:>9.1f}{lat['q1']:>7.1f}-{lat['q3']:<7.1f}"
                f"{self.videos_per_s[name]:>10.2f}{f(ratio_median, '.2f'):>8}  | "
                f"{f(pub.get('gmacs'), '.1f'):>9}{f(pub.get('params_m'), '.1f'):>8}"
                f"{f(pub.get('latency_ms'), '.1f'):>8}{f(pub.get('videos_per_s'), '.1f'):>7}"
            )
        lines.append("not run (published figures only):")
        for name, (description, paper) in PUBLISHED_ONLY.items():
            lines.append(
                f"{name:<14} {description}: {f(paper.gmacs, '.0f')} GMACs, {f(paper.params_m, '.1f')} M params"
                + (f", {paper.latency_ms} ms, {paper.videos_per_s} V/s" if paper.latency_ms else "")
            )
        for name, ratio in self.ratio_to_tsm.items():
            if name != ratio["reference"]:
                lines.append(
                    f"{name} / {ratio['reference']} latency (per round): median {ratio['median']:.2f}, "
                    f"IQR {ratio['q1']:.2f}-{ratio['q3']:.2f}"
                    + (f"; published {ratio['published']:.2f}" if ratio.get("published") else "")
                )
        return "\n".join(lines)


def benchmark_compare(
    names: list[str] | tuple[str, ...] = DEFAULT_COMPARE,
    *,
    batch_size: int | None = None,
    repeats: int = 10,
    warmup: int = 2,
    device: str | None = None,
    threads: int | None = None,
    size: int | None = None,
    num_classes: int = 400,
) -> CompareResult:
    """Params, GMACs, batch-1 latency and throughput of ``names`` (keys of `CONTENDERS`),
    measured in one interleaved run on one device.

    ``size`` overrides every model's published input size (for quick runs; the GMACs
    then differ from the papers'); ``batch_size`` is the throughput batch (default 16
    on CUDA, 4 on the CPU).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    names = _known(names)
    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    if batch_size is None:
        batch_size = 16 if dev.type == "cuda" else 4
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    models = {name: build_contender(name, num_classes=num_classes) for name in names}
    sizes = {name: size or int(getattr(m, "input_size", 224)) for name, m in models.items()}
    frames = {name: m.config.n_segment for name, m in models.items()}
    clips1 = {name: torch.randn(1, frames[name], 3, sizes[name], sizes[name]) for name in names}
    params = {name: count_params(m) for name, m in models.items()}
    gmacs = {name: count_flops(m, clips1[name]) / 2e9 for name, m in models.items()}
    models = {name: m.to(dev) for name, m in models.items()}

    def inputs(batch: int) -> dict[str, torch.Tensor]:
        return {name: clips1[name].to(dev).expand(batch, -1, -1, -1, -1).contiguous() for name in names}

    latency_s = interleaved_latency(models, inputs(1), repeats=repeats, warmup=warmup)
    batch_s = interleaved_latency(models, inputs(batch_size), repeats=max(3, repeats // 2), warmup=1)
    latency = {name: summarize([t * 1e3 for t in ts]) for name, ts in latency_s.items()}
    published = {name: (dataclasses.asdict(paper) if (paper := CONTENDERS[name].published) else None) for name in names}
    return CompareResult(
        device=str(dev),
        threads=torch.get_num_threads(),
        batch_size=batch_size,
        repeats=repeats,
        sizes=sizes,
        frames=frames,
        params=params,
        gmacs=gmacs,
        latency_ms=latency,
        videos_per_s={name: batch_size / summarize(ts)["median"] for name, ts in batch_s.items()},
        ratio_to_tsm=_ratios_to_tsm(names, frames, latency_s),
        published=published,
        samples_ms={name: [t * 1e3 for t in ts] for name, ts in latency_s.items()},
        throughput_samples_ms={name: [t * 1e3 for t in ts] for name, ts in batch_s.items()},
    )


def _known(names: Sequence[str]) -> list[str]:
    """``names`` as a list, each a key of `CONTENDERS`."""
    names = list(names)
    for name in names:
        if name not in CONTENDERS:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(CONTENDERS)}")
    return names


def _ratios_to_tsm(names: list[str], frames: dict[str, int], seconds: dict[str, list[float]]) -> dict[str, Any]:
    """Each model's per-round latency ratio to its reference TSM (`Contender.reference`) if
    that is in the run, else to a TSM of the same T in the run, else none."""
    tsm_by_t = {
        frames[n]: n
        for n in names
        if CONTENDERS[n].options.get("family", "tsn") == "tsn" and CONTENDERS[n].options.get("shift")
    }
    out: dict[str, Any] = {}
    for name in names:
        ref = CONTENDERS[name].reference
        if ref not in names:
            ref = tsm_by_t.get(frames[name], name if name in tsm_by_t.values() else None)
        if ref is None:
            continue
        ratio = summarize([a / b for a, b in zip(seconds[name], seconds[ref], strict=True)])
        pub, pub_ref = CONTENDERS[name].published, CONTENDERS[ref].published
        if pub and pub_ref and pub.latency_ms and pub_ref.latency_ms:
            ratio["published"] = pub.latency_ms / pub_ref.latency_ms
        out[name] = dict(ratio, reference=ref)
    return out


def plot_compare(result: CompareResult, path: str | Path) -> Path:
    """Latency against GMACs, bubble area proportional to parameters (PNG); published
    points of the same models as hollow circles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name in result.params:
        x, y = result.gmacs[name], result.latency_ms[name]["median"]
        ax.scatter([x], [y], s=result.params[name] / 1e5, alpha=0.5)
        ax.annotate(name, (x, y), fontsize=8, ha="center", va="bottom")
    ax.set_xlabel("GMACs per video")
    ax.set_ylabel(f"latency at batch 1 (ms, {result.device})")
    ax.set_title("Measured side by side; bubble area = parameters", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
