"""The paper's efficiency figures on a GPU in one run (run it as gpu_paper_tables.sh).

1. The efficiency table: `tsm bench compare all --device cuda` (`apps.bench.compare`): params,
   GMACs, batch-1 latency and throughput of every contender, timed in interleaved rounds, each
   model's latency ratio to the TSM of equal frames per round, next to the published column
   (TSM paper Table 5, one P100: TSM 17.4 ms / 77.4 videos/s, I3D 25.8 / 42.4, ECO 30.6 / 45.6).
2. The shift-proportion latency panel: TSN and TSM at 1/16, 1/8, 1/4, 1/2 and all channels with
   TSN's weights, ResNet-50, T=8, 224x224, batch 1, interleaved rounds
   (`apps.bench.proportions.shift_latency`); the paper: +3% at 1/4 (its default), +12.4%
   for a naive shift of every channel.

Writes compare.json, shift-latency.json and tables.md (both tables, the paper's figures, the
machine and the command) to --out and prints tables.md; with matplotlib, also compare.png and
shift-latency.png. It needs only torch and torchvision (a bare GPU machine); without matplotlib
there, ``--replot DIR`` draws the PNGs from the JSON files on another machine.

    benchmarks/gpu_paper_tables.sh --out docs/gpu/<machine>-<date>   # on a CUDA machine: a few minutes
    benchmarks/gpu_paper_tables.sh --smoke --out /tmp/tables         # CPU, toy sizes: checks the script
    benchmarks/gpu_paper_tables.sh --replot docs/gpu/<machine>-<date>  # the PNGs, where matplotlib is
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

# the paper's latency overhead of TSM over TSN per proportion (ICCV 2019, Sec. 3.2 / Fig. 3, P100)
PAPER_OVERHEAD = {"1/4": "+3%", "1 (all)": "+12.4% (naive full shift)"}
FULL = {
    "compare": dict(names=["all"], repeats=30, warmup=3, device="cuda"),
    "latency": dict(arch="resnet50", size=224, n_segment=8, repeats=60, warmup=5, device="cuda"),
}
SMOKE = {
    "compare": dict(names=["tsm", "tsn"], repeats=2, warmup=1, device="cpu", size=32, batch_size=2),
    "latency": dict(arch="resnet18", size=32, n_segment=4, repeats=2, warmup=1, device="cpu"),
}


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{gpu}; {platform.processor() or platform.machine()}, torch {torch.__version__}"


def has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def run_compare(settings: dict[str, Any], out: Path):
    from temporal_shift.apps.bench.compare import benchmark_compare, parse_names

    settings = dict(settings)
    names = parse_names(",".join(settings.pop("names")))
    result = benchmark_compare(names, **settings)
    (out / "compare.json").write_text(result.to_json())
    return result


def run_latency(settings: dict[str, Any], out: Path) -> dict[str, Any]:
    from temporal_shift.apps.bench.proportions import shift_latency

    latency = shift_latency(**settings)
    (out / "shift-latency.json").write_text(json.dumps(latency, indent=2) + "\n")
    return latency


def replot(folder: Path) -> list[Path]:
    """compare.png and shift-latency.png from the JSON files in ``folder``."""
    from temporal_shift.apps.bench.compare import CompareResult, plot_compare
    from temporal_shift.apps.bench.proportions import plot_latency

    data = json.loads((folder / "compare.json").read_text())
    data.pop("published_only", None)
    latency = json.loads((folder / "shift-latency.json").read_text())
    return [
        plot_compare(CompareResult(**data), folder / "compare.png"),
        plot_latency(latency, folder / "shift-latency.png"),
    ]


def latency_table(latency: dict[str, Any]) -> str:
    lines = [
        "| shifted | latency ms (median, IQR) | overhead vs TSN per round (median, IQR) | paper (P100) |",
        "|---|---|---|---|",
    ]
    for label, row in latency["per_proportion"].items():
        ms, r = row["latency_ms"], row["ratio"]
        overhead = f"{100 * (r['median'] - 1):+.1f}% ({100 * (r['q1'] - 1):+.1f}..{100 * (r['q3'] - 1):+.1f})"
        lines.append(
            f"| {label} | {ms['median']:.2f} ({ms['q1']:.2f}-{ms['q3']:.2f}) | {overhead} | "
            f"{PAPER_OVERHEAD.get(label, '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="folder for the JSON, PNG and tables.md")
    p.add_argument("--smoke", action="store_true", help="CPU, toy sizes: checks the script end to end")
    p.add_argument("--replot", type=Path, metavar="DIR", help="only draw the PNGs from DIR's JSON files")
    args = p.parse_args(argv)
    if args.replot:
        paths = replot(args.replot)
        print("wrote " + ", ".join(str(path) for path in paths))
        return ""
    if args.out is None:
        p.error("--out is required (or --replot DIR)")
    import torch

    if not args.smoke and not torch.cuda.is_available():
        p.error("no CUDA device: this script measures the GPU figures (--smoke checks it on the CPU)")
    settings = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    compare = run_compare(settings["compare"], args.out)
    latency = run_latency(settings["latency"], args.out)
    lat = settings["latency"]
    text = "\n".join(
        [
            "# The paper's efficiency figures, measured",
            "",
            f"Command: `benchmarks/gpu_paper_tables.sh {shlex.join(sys.argv[1:] if argv is None else argv)}`; "
            f"machine: {machine()}; {time.strftime('%Y-%m-%d')}; {(time.perf_counter() - started) / 60:.1f} min.",
            "",
            "## Efficiency table (`tsm bench compare`)",
            "",
            "```",
            compare.table(),
            "```",
            "",
            f"## Shift proportion: latency against TSN ({lat['arch']}, T={lat['n_segment']}, {lat['size']}px, "
            f"batch 1, {lat['repeats']} interleaved rounds, identical weights)",
            "",
            latency_table(latency),
            "",
        ]
    )
    (args.out / "tables.md").write_text(text)
    print(text)
    if has_matplotlib():
        replot(args.out)
    else:
        print(f"no matplotlib here: draw the PNGs elsewhere with gpu_paper_tables.sh --replot {args.out}")
    return text


if __name__ == "__main__":
    main()
