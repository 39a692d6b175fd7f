"""Top-1 and latency of a trained TSM before and after int8 quantization, in ExecuTorch and OpenVINO.

The model is the demo's trained TSM (``tsm demo``: ResNet-18, T=4, 32x32 synthetic clips; its
``runs/demo/tsm/last.pt``), tested on the demo's validation split (720 clips) the way the demo
tests it: one clip of segment centres, the checkpoint's short side and crop (32, 32). The int8
builds are what ``tsm export --quantize int8 --calibration LIST`` writes: ExecuTorch with PT2E and
the XNNPACK quantizer, OpenVINO with NNCF, both calibrated on the first ``--calibration-clips``
clips of the *training* list. Every runtime sees the same preprocessed clips, one at a time (batch 1); latency
is timed in interleaved rounds over the runtimes on one clip.

    .venv/bin/python benchmarks/int8_accuracy.py --checkpoint runs/demo/tsm/last.pt \
        --root data/synthetic_demo --json int8.json

``--online`` takes a causal checkpoint (``mode: causal``) and measures its streaming step instead,
as ``tsm export --online`` writes it and ``tsm stream`` runs it (`runtimes.ExportedStream`; in
OpenVINO the shift buffers kept as states): each validation clip's T frames one at a time, the
clip scored by the running mean of the per-frame logits, against the PyTorch stream
(`OnlineRecognizer`). OpenVINO int8 is measured twice: as exported (the buffers cut after one
quantizer, `engine.openvino_int8.quantize_new_buffers`) and with NNCF's own cut. Latency is per
frame, a clip's T frames a round. ``--nncf-settings`` adds OpenVINO int8 builds of the step
with other NNCF settings (`NNCF_SETTINGS`: NNCF's default activation ranges, which the export
replaced by the extremes over all samples, its histogram ranges, its mixed preset, bias
correction in full or none), each named ``openvino-int8-<setting>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from temporal_shift.checkpoint.loading import load_checkpoint
from temporal_shift.data.factory import build_dataset
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.engine import export
from temporal_shift.engine.export import calibration_clips, export_model, export_online
from temporal_shift.engine.runtimes import ExportedStream, load_runtime
from temporal_shift.models.online import OnlineRecognizer

# --nncf-settings: each an OpenVINO int8 build of the streaming step with these `nncf.quantize`
# options instead of the export's (which sets only the activation ranges: the extremes over all
# samples); functions, so that nncf is imported only when asked for
NNCF_SETTINGS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "nncf-default": lambda nncf: {},  # the mean over samples of each sample's extremes
    "histogram": lambda nncf: {
        "advanced_parameters": nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=nncf.quantization.range_estimator.RangeEstimatorParametersSet.HISTOGRAM
        )
    },
    "mixed": lambda nncf: {"preset": nncf.QuantizationPreset.MIXED},
    "bias-correction-full": lambda nncf: {"fast_bias_correction": False},
    "no-bias-correction": lambda nncf: {
        "advanced_parameters": nncf.AdvancedQuantizationParameters(disable_bias_correction=True)
    },
}


@contextlib.contextmanager
def _nncf_options(setting: str) -> Iterator[None]:
    """`nncf.quantize` called with the options of ``setting`` in place of the export's."""
    import nncf

    quantize = nncf.quantize
    options = NNCF_SETTINGS[setting](nncf)

    def patched(model: Any, dataset: Any, **kwargs: Any) -> Any:
        kwargs.pop("advanced_parameters", None)
        return quantize(model, dataset, **{**kwargs, **options})

    with mock.patch.object(nncf, "quantize", patched):
        yield


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="the demo's data folder")
    parser.add_argument("--val-list", default="val_frames.txt")
    parser.add_argument("--calibration-list", default="train_frames.txt")
    parser.add_argument("--calibration-clips", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=100, help="interleaved latency rounds")
    parser.add_argument("--out-dir", type=Path, default=Path("int8_accuracy"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--online", action="store_true", help="a causal checkpoint's streaming step, frame by frame")
    parser.add_argument(
        "--nncf-settings",
        action="store_true",
        help=f"with --online: OpenVINO int8 also with other NNCF settings ({', '.join(NNCF_SETTINGS)})",
    )
    args = parser.parse_args(argv)
    if args.nncf_settings and not args.online:
        parser.error("--nncf-settings compares builds of the streaming step: add --online")
    torch.set_num_threads(args.threads)

    loaded = load_checkpoint(args.checkpoint)
    model = loaded.model.eval()
    if args.online:
        try:
            model = OnlineRecognizer(model)
        except ValueError as exc:
            parser.error(f"--online: {args.checkpoint}: {exc}")
    size = int(loaded.input_size or 224)
    t = model.config.n_segment
    scale = int(loaded.scale_size or round(size * 8 / 7))  # as the checkpoint was tested (the demo: 32, 32)
    val = build_dataset(
        modality="rgb",
        list_file=args.root / args.val_list,
        root=args.root,
        train=False,
        size=size,
        scale_size=scale,
        sampler=TSNSampler(n_segment=t, train=False),
    )
    clips = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val.records[i].label for i in range(len(val))])
    calibration = calibration_clips(
        args.root / args.calibration_list,
        root=args.root,
        model=model,
        size=size,
        scale_size=scale,
        limit=args.calibration_clips,
    )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.online:
        results = _online(model, clips, labels, calibration, size=size, args=args)
        _report(results, args, clips=len(clips), size=size, calibration_clips=sum(len(c) for c in calibration))
        return results
    runners = {"pytorch": lambda x: model(x)}
    for fmt, suffix in (("executorch", ".pte"), ("openvino", ".xml")):
        for quantize in (None, "int8"):
            path = args.out_dir / f"tsm-{'int8' if quantize else 'fp32'}{suffix}"
            started = time.perf_counter()
            if not path.is_file():  # kept in --out-dir: a second run only measures
                export_model(
                    model,
                    path,
                    format=fmt,
                    size=size,
                    batch_size=1,
                    quantize=quantize,
                    calibration=calibration if quantize else None,
                )
                print(f"exported {path} in {time.perf_counter() - started:.0f} s", flush=True)
            runtime = load_runtime(path, threads=args.threads)
            runners[f"{fmt}-{quantize or 'fp32'}"] = lambda x, r=runtime: r(x)[0]

    results: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        reference = torch.cat([model(c.unsqueeze(0)) for c in clips])
        for name, run in runners.items():
            logits = torch.cat([run(c.unsqueeze(0)) for c in clips])
            results[name] = {
                "top1": float((logits.argmax(1) == labels).float().mean()) * 100,
                "agreement_with_pytorch": float((logits.argmax(1) == reference.argmax(1)).float().mean()) * 100,
                "max_abs_logit_difference": float((logits - reference).abs().max()),
                "mean_abs_logit_difference": float((logits - reference).abs().mean()),
            }
            print(name, results[name], flush=True)
        one = clips[:1]
        times: dict[str, list[float]] = {name: [] for name in runners}
        names = list(runners)
        for r in range(args.repeats + 3):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                runners[name](one)
                if r >= 3:
                    times[name].append((time.perf_counter() - start) * 1e3)
    _add_latency(results, times)
    _report(results, args, clips=len(clips), size=size, calibration_clips=sum(len(c) for c in calibration))
    return results


def _online(
    model: OnlineRecognizer,
    clips: torch.Tensor,
    labels: torch.Tensor,
    calibration: list[torch.Tensor],
    *,
    size: int,
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """The streaming step in PyTorch and exported (fp32, int8; OpenVINO int8 also with NNCF's
    cut), each clip streamed frame by frame and scored by the running mean of its logits."""
    steps: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    streams: dict[str, ExportedStream] = {}
    builds = [(fmt, q, "") for fmt in ("executorch", "openvino") for q in (None, "int8")]
    builds.append(("openvino", "int8", "nncf-cut"))
    builds += [("openvino", "int8", setting) for setting in (NNCF_SETTINGS if args.nncf_settings else ())]
    for fmt, quantize, variant in builds:
        name = "-".join(part for part in (fmt, quantize or "fp32", variant) if part)
        path = args.out_dir / f"online-{name}{'.pte' if fmt == 'executorch' else '.xml'}"
        if not path.is_file():  # kept in --out-dir: a second run only measures
            started = time.perf_counter()
            if variant == "nncf-cut":
                options: contextlib.AbstractContextManager[Any] = mock.patch.object(
                    export, "quantize_new_buffers", lambda m: 0
                )
            else:
                options = _nncf_options(variant) if variant else contextlib.nullcontext()
            with options:
                export_online(model, path, format=fmt, size=size, quantize=quantize, calibration=calibration)
            print(f"exported {path} in {time.perf_counter() - started:.0f} s", flush=True)
        streams[name] = ExportedStream(path, threads=args.threads)
        steps[name] = streams[name].update

    def stream_clip(name: str, clip: torch.Tensor) -> torch.Tensor:
        if name == "pytorch":
            buffers = model.initial_buffers(size=(size, size))
            total = 0
            for frame in clip:
                logits, *buffers = model(frame.unsqueeze(0), *buffers)
                total = total + logits[0]
        else:
            streams[name].reset()
            total = sum(steps[name](frame.unsqueeze(0)) for frame in clip)
        return total / len(clip)

    names = ["pytorch", *steps]
    results: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        scores = {name: torch.stack([stream_clip(name, c) for c in clips]) for name in names}
        for name in names:
            results[name] = {
                "top1": float((scores[name].argmax(1) == labels).float().mean()) * 100,
                "agreement_with_pytorch": float((scores[name].argmax(1) == scores["pytorch"].argmax(1)).float().mean())
                * 100,
                "max_abs_logit_difference": float((scores[name] - scores["pytorch"]).abs().max()),
                "mean_abs_logit_difference": float((scores[name] - scores["pytorch"]).abs().mean()),
            }
            print(name, results[name], flush=True)
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.repeats + 3):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                stream_clip(name, clips[0])
                if r >= 3:
                    times[name].append((time.perf_counter() - start) * 1e3 / len(clips[0]))
    _add_latency(results, times)
    return results


def _add_latency(results: dict[str, dict[str, float]], times: dict[str, list[float]]) -> None:
    for name in results:
        results[name]["latency_ms_median"] = statistics.median(times[name])
        q = statistics.quantiles(times[name], n=4)
        results[name]["latency_ms_iqr"] = [q[0], q[2]]  # type: ignore[assignment]


def _report(
    results: dict[str, dict[str, float]], args: argparse.Namespace, *, clips: int, size: int, calibration_clips: int
) -> None:
    unit = "ms/frame" if args.online else "ms/clip"
    print(f"{'runtime':<36}{'top-1 %':>9}{'agree %':>9}{'mean |dlogit|':>15}{'max':>9}{unit:>10}  IQR")
    for name, row in results.items():
        low, high = row["latency_ms_iqr"]  # type: ignore[misc]
        print(
            f"{name:<36}{row['top1']:>9.2f}{row['agreement_with_pytorch']:>9.2f}{row['mean_abs_logit_difference']:>15.3g}"
            f"{row['max_abs_logit_difference']:>9.3g}{row['latency_ms_median']:>10.2f}  {low:.2f}-{high:.2f}"
        )
    if args.json:
        record = {"checkpoint": str(args.checkpoint), "online": args.online, "threads": args.threads}
        record |= {"clips": clips, "size": size, "calibration_clips": calibration_clips, "results": results}
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
