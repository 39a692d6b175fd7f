"""Export a recognizer, or its streaming step, for the runtimes it is deployed to, and verify it there.

Formats (`FORMATS`): ``onnx`` (onnxruntime; TensorRT and anything else reads it),
``executorch`` (a ``.pte`` program lowered to the XNNPACK delegate: phones), ``openvino``
(an ``.xml``/``.bin`` IR: Intel CPUs and edge devices), ``torchscript``, ``exported``
(a torch.export ``.pt2``) and ``tensorrt`` (an engine built from the ONNX graph on a CUDA
device). Every exported graph has one form of the shift, `ops.shift.shift_export`: static
slices and concatenations on rank-4 tensors, Core ATen ops only, static shapes except the
batch. For onnxruntime, OpenVINO and TensorRT, a residual-shift ResNet goes out in its split
form (`engine.split_form`): the channels each shift moves travel as a tensor of their own, so
the shift copies only them and the runtimes keep their blocked layouts around it (OpenVINO at a
static batch of one clip: shifted on the batch axis, `split_form.shift_one_clip`). An offline
model takes clips (N, T, C, H, W) named ``clips`` and returns ``logits``
(N, K); N is dynamic, except in ExecuTorch programs (XNNPACK delegates slices of static
shapes only: their batch is fixed, 1 by default). The streaming step of an online model
(`export_online`) takes ``frame`` (1, C, H, W) and ``buffer_0 ...`` and returns ``logits``
and ``new_buffer_0 ...``, all static.

``quantize="int8"`` (ExecuTorch: PT2E with the XNNPACK quantizer; OpenVINO: NNCF post-training
quantization) calibrates on clips the caller gives (`calibration_clips` reads them from a list).
`verify_export` / `verify_online_export` run the file in its runtime
(`engine.runtimes.load_runtime`) against PyTorch and give the differences (`Parity`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from temporal_shift.engine.openvino_int8 import quantize_after_shift, quantize_new_buffers
from temporal_shift.engine.runtimes import (
    FORMATS,
    RUNTIMES,
    SUFFIXES,
    TORCHSCRIPT_SIGNATURE,
    ExportedStream,
    load_runtime,
    require,
)
from temporal_shift.engine.split_form import split_form
from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.online import OnlineRecognizer, OnlineStream

if TYPE_CHECKING:
    from temporal_shift.data.dataset import SkippedSample

__all__ = [
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "QUANTIZABLE",
    "SUFFIXES",
    "ExportedStream",
    "OnnxStream",
    "Parity",
    "calibration_clips",
    "check_exportable",
    "example_input",
    "export_model",
    "export_online",
    "onnx_graph_summary",
    "run_onnx",
    "verify_export",
    "verify_online_export",
]

INPUT_NAME = "clips"
OUTPUT_NAME = "logits"
QUANTIZABLE = ("executorch", "openvino")
QUANTIZE = ("int8",)
# formats whose runtimes run a residual-shift ResNet faster in its split form (`engine.split_form`)
SPLIT_FORMATS = ("onnx", "openvino", "tensorrt")
# of those, the formats whose runtimes run the split form's shift faster on the batch axis
# when the batch is one static clip (`split_form.shift_one_clip`)
ONE_CLIP_FORMATS = ("openvino",)
# a model family with these layers cannot go to ExecuTorch: XNNPACK has no 3D convolution or pooling
_NO_3D = ("executorch",)
_LAYERS_3D = (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)


def example_input(model: ClipClassifier, *, batch_size: int = 2, size: int | None = None) -> torch.Tensor:
    """A random clip batch of the shape the model expects (``size``: default, its published one)."""
    return torch.randn(batch_size, model.config.n_segment, model.config.input_channels, *(_size(model, size),) * 2)


def _size(model: ClipClassifier | OnlineRecognizer, size: int | None) -> int:
    return int(getattr(model, "input_size", 224)) if size is None else size


def check_exportable(model: nn.Module, *, format: str, quantize: str | None = None) -> None:
    """Raise a one-line ValueError when ``model`` cannot go to ``format`` (unknown format, a
    family the runtime cannot run, a quantization the format does not have)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if quantize is not None:
        if quantize not in QUANTIZE:
            raise ValueError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZE)}")
        if format not in QUANTIZABLE:
            raise ValueError(f"--quantize {quantize} is for {' and '.join(QUANTIZABLE)}, not {format}")
    if format in _NO_3D:
        layer = next((name for name, m in model.named_modules() if isinstance(m, _LAYERS_3D)), None)
        if layer is not None:
            family = getattr(getattr(model, "config", None), "family", type(model).__name__)
            raise ValueError(
                f"a {family} model has 3D layers ({layer}), which {format} (XNNPACK) cannot run; "
                "export it to onnx or openvino"
            )


def _check_out(out: str | Path, format: str) -> Path:
    out = Path(out)
    if format == "openvino" and out.suffix.lower() != ".xml":
        raise ValueError(f"{out}: an OpenVINO model is an .xml file (its weights go to the .bin beside it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def export_model(
    model: ClipClassifier,
    out: str | Path,
    *,
    format: str = "onnx",
    size: int | None = None,
    batch_size: int | None = None,
    opset: int = 18,
    quantize: str | None = None,
    calibration: Sequence[torch.Tensor] | None = None,
    precision: str = "fp32",
) -> Path:
    """Write ``model`` (any model family, put in eval mode on the CPU) to ``out`` in ``format``;
    returns the path.

    ``size``: the input's height and width (default: the model's published size, 224; C3D
    112). ``batch_size``: a static batch (default: dynamic, except ExecuTorch: 1).
    ``quantize="int8"`` (executorch, openvino) calibrates on ``calibration``: clip batches
    (N, T, C, H, W), e.g. from `calibration_clips`. ``precision``: TensorRT's, fp32 or fp16.
    """
    check_exportable(model, format=format, quantize=quantize)
    out = _check_out(out, format)
    model = model.cpu().eval()
    if format == "executorch" and batch_size is None:
        batch_size = 1
    x = example_input(model, batch_size=batch_size or 2, size=size)
    dynamic = None if batch_size is not None else ({0: torch.export.Dim("batch", min=1)},)
    graph = split_form(model, one_clip_shift=format in ONE_CLIP_FORMATS) if format in SPLIT_FORMATS else None
    _export_graph(
        graph or model,
        (x,),
        out,
        format=format,
        dynamic=dynamic,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset=opset,
        quantize=quantize,
        calibration=[(c,) for c in calibration or ()],
        precision=precision,
    )
    return out


def export_online(
    model: OnlineRecognizer,
    out: str | Path,
    *,
    format: str = "onnx",
    size: int = 224,
    opset: int = 18,
    quantize: str | None = None,
    calibration: Sequence[torch.Tensor] | None = None,
    precision: str = "fp32",
) -> Path:
    """Write the streaming step ``(frame, *buffers) -> (logits, *new_buffers)`` in ``format``.

    Inputs are named ``frame`` (1, 3, size, size) and ``buffer_0`` ...; outputs ``logits``
    and ``new_buffer_0`` ...; a caller feeds each step's ``new_buffer_i`` back as
    ``buffer_i`` (`runtimes.ExportedStream` does). All shapes are static. ``calibration``
    (``quantize="int8"``): clips (N, T, C, H, W) whose frames are streamed through the step
    to collect its inputs.
    """
    check_exportable(model, format=format, quantize=quantize)
    out = _check_out(out, format)
    model = model.cpu().eval()
    buffers = model.initial_buffers(size=(size, size))
    frame = torch.zeros(1, 3, size, size)
    n = len(buffers)
    samples: list[tuple[torch.Tensor, ...]] = []
    for clips in calibration or ():
        for clip in clips:
            state = model.initial_buffers(size=(size, size))
            with torch.no_grad():
                for f in clip:
                    samples.append((f.unsqueeze(0), *state))
                    _, *state = model(f.unsqueeze(0), *state)
    _export_graph(
        model,
        (frame, *buffers),
        out,
        format=format,
        dynamic=None,
        input_names=["frame"] + [f"buffer_{i}" for i in range(n)],
        output_names=[OUTPUT_NAME] + [f"new_buffer_{i}" for i in range(n)],
        opset=opset,
        quantize=quantize,
        calibration=samples,
        precision=precision,
        stream=True,
    )
    return out


def _export_graph(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    out: Path,
    *,
    format: str,
    dynamic: tuple[dict[int, Any], ...] | None,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    quantize: str | None,
    calibration: Sequence[tuple[torch.Tensor, ...]],
    precision: str,
    stream: bool = False,
) -> None:
    """One graph to one file. ``dynamic``: torch.export's dynamic_shapes (None: all static).
    ``stream``: the graph is a streaming step, its calibration samples single frames."""
    if quantize is not None and not calibration:
        raise ValueError(f"--quantize {quantize} needs calibration clips (--calibration LIST)")
    if format == "onnx":
        _to_onnx(model, inputs, out, dynamic=dynamic, input_names=input_names, output_names=output_names, opset=opset)
    elif format == "tensorrt":
        _to_tensorrt(
            model,
            inputs,
            out,
            dynamic=dynamic,
            input_names=input_names,
            output_names=output_names,
            opset=opset,
            precision=precision,
        )
    elif format == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():  # torch.jit is deprecated upstream but still works
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(model, inputs, check_trace=False)
        # TorchScript keeps no input shapes: they travel in the file for `runtimes.TorchRuntime`
        shapes = [[None if dynamic is not None and i == 0 else d for i, d in enumerate(x.shape)] for x in inputs]
        signature = {"inputs": input_names, "outputs": output_names, "shapes": shapes}
        traced.save(str(out), _extra_files={TORCHSCRIPT_SIGNATURE: json.dumps(signature)})
    elif format == "exported":
        torch.export.save(_capture(model, inputs, dynamic), str(out))
    elif format == "executorch":
        _to_executorch(model, inputs, out, quantize=quantize, calibration=calibration)
    elif format == "openvino":
        _to_openvino(
            model,
            inputs,
            out,
            dynamic=dynamic,
            input_names=input_names,
            output_names=output_names,
            quantize=quantize,
            calibration=calibration,
            stream=stream,
        )
    else:  # pragma: no cover - check_exportable
        raise ValueError(f"unknown export format {format!r}")


def _capture(model: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic: Any) -> torch.export.ExportedProgram:
    with torch.no_grad():
        return torch.export.export(model, inputs, dynamic_shapes=dynamic)


def _to_onnx(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    out: Path,
    *,
    dynamic: Any,
    input_names: list[str],
    output_names: list[str],
    opset: int,
) -> None:
    for module in ("onnx", "onnxscript"):
        require(module, what="ONNX export")
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            inputs,
            dynamo=True,
            dynamic_shapes=dynamic,
            input_names=input_names,
            output_names=output_names,
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    assert program is not None  # None only without dynamo=True
    program.save(str(out))


def _to_tensorrt(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    out: Path,
    *,
    dynamic: Any,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    precision: str,
) -> None:
    """Build a TensorRT engine from the ONNX graph (fp32 or fp16) on this machine's GPU; a dynamic
    batch gets an optimisation profile for batches 1-8 (best at 1)."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"TensorRT precision must be fp32 or fp16, got {precision!r}")
    trt = require("tensorrt", what="TensorRT export")
    if not torch.cuda.is_available():
        raise ValueError("tensorrt export builds the engine on a CUDA device, and none is available")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        _to_onnx(
            model, inputs, onnx_path, dynamic=dynamic, input_names=input_names, output_names=output_names, opset=opset
        )
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f"TensorRT cannot parse the exported ONNX graph: {errors}")
        config = builder.create_builder_config()
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        if dynamic is not None:
            profile = builder.create_optimization_profile()
            for name, x in zip(input_names, inputs, strict=True):
                shape = tuple(x.shape[1:])
                profile.set_shape(name, (1, *shape), (1, *shape), (8, *shape))
            config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        if engine is None:
            raise ValueError("TensorRT could not build an engine for the exported graph")
        out.write_bytes(bytes(engine))


def _to_executorch(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    out: Path,
    *,
    quantize: str | None,
    calibration: Sequence[tuple[torch.Tensor, ...]],
) -> None:
    """torch.export (static shapes) -> [PT2E int8] -> edge dialect lowered to XNNPACK -> .pte."""
    exir = require("executorch.exir", what="ExecuTorch export")
    xnnpack = require("executorch.backends.xnnpack.partition.xnnpack_partitioner", what="ExecuTorch export")
    program = _capture(model, inputs, None)
    if quantize == "int8":
        pt2e = require("torchao.quantization.pt2e.quantize_pt2e", what="ExecuTorch int8 quantization")
        quantizer_module = require(
            "executorch.backends.xnnpack.quantizer.xnnpack_quantizer", what="ExecuTorch int8 quantization"
        )
        quantizer = quantizer_module.XNNPACKQuantizer()
        quantizer.set_global(quantizer_module.get_symmetric_quantization_config(is_per_channel=True))
        prepared = pt2e.prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            for sample in calibration:
                prepared(*sample)
        program = _capture(pt2e.convert_pt2e(prepared), inputs, None)
    lowered = exir.to_edge_transform_and_lower(program, partitioner=[xnnpack.XnnpackPartitioner()])
    out.write_bytes(lowered.to_executorch().buffer)


def _to_openvino(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    out: Path,
    *,
    dynamic: Any,
    input_names: list[str],
    output_names: list[str],
    quantize: str | None,
    calibration: Sequence[tuple[torch.Tensor, ...]],
    stream: bool = False,
) -> None:
    """torch.export -> OpenVINO model (names set, fp32 weights kept) -> [NNCF int8] -> IR.

    A streaming step (``stream``) is calibrated with each activation's extremes over all its
    samples (NNCF's MINMAX) instead of NNCF's default, the mean over samples of each one's
    extremes: a sample there is one frame, and the default's ranges clipped what the step
    streams (docs/deploy.md: MobileNetV2 1.25 points of top-1 lost, 0.28 with the extremes)."""
    ov = require("openvino", what="OpenVINO export")
    ov_model = ov.convert_model(_capture(model, inputs, dynamic))
    # the converted model's inputs are fully dynamic: give them the static shapes (but the batch)
    shapes = [[-1 if dynamic is not None and i == 0 else d for i, d in enumerate(x.shape)] for x in inputs]
    ov_model.reshape({port: ov.PartialShape(shape) for port, shape in zip(ov_model.inputs, shapes, strict=True)})
    for port, name in zip(ov_model.inputs, input_names, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(ov_model.outputs, output_names, strict=True):
        port.get_tensor().set_names({name})
    if quantize == "int8":
        nncf = require("nncf", what="OpenVINO int8 quantization")
        samples = [[x.numpy() for x in sample] for sample in calibration]
        options: dict[str, Any] = {}
        if stream:
            extremes = require("nncf.quantization.range_estimator", what="OpenVINO int8 quantization")
            options["advanced_parameters"] = nncf.AdvancedQuantizationParameters(
                activations_range_estimator_params=extremes.RangeEstimatorParametersSet.MINMAX
            )
        ov_model = nncf.quantize(ov_model, nncf.Dataset(samples), subset_size=len(samples), **options)
        quantize_after_shift(ov_model)  # the convolutions after the shifts then run in int8
        quantize_new_buffers(ov_model)  # a streaming step's cuts into new buffers then run in int8
    ov.save_model(ov_model, str(out), compress_to_fp16=False)


# --- what is in an exported graph -------------------------------------------------------------


def onnx_graph_summary(path: str | Path) -> dict[str, Any]:
    """Op counts of an ONNX file and the largest rank of any tensor past its inputs (shape inference)."""
    onnx = require("onnx", what="reading ONNX graphs")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    inputs = {i.name for i in graph.input}
    ranks = [len(v.type.tensor_type.shape.dim) for v in [*graph.value_info, *graph.output] if v.name not in inputs]
    return {
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "max_rank": max(ranks, default=0),
        "rank5_tensors": sum(r >= 5 for r in ranks),
    }


# --- reading calibration clips ---------------------------------------------------------------


def calibration_clips(
    list_file: str | Path,
    *,
    root: str | Path,
    model: ClipClassifier | OnlineRecognizer,
    size: int | None = None,
    scale_size: int | None = None,
    limit: int = 32,
    batch_size: int = 1,
) -> list[torch.Tensor]:
    """Clip batches (``batch_size``, T, C, size, size) for int8 calibration: the first ``limit``
    entries of ``list_file`` (frame folders or videos under ``root``, as `tsm test` reads them),
    sampled and preprocessed as at test time (segment centres, short side ``scale_size``, default
    size*8/7, centre crop)."""
    from temporal_shift.data.factory import build_dataset
    from temporal_shift.data.sampling import TSNSampler

    side = _size(model, size)
    dataset = build_dataset(
        modality="rgb",
        list_file=list_file,
        root=root,
        train=False,
        size=side,
        scale_size=scale_size or round(side * 8 / 7),
        sampler=TSNSampler(n_segment=model.config.n_segment, train=False),
    )
    count = min(limit, len(dataset))
    if count == 0:
        raise ValueError(f"{list_file}: no clips to calibrate on")
    clips = torch.stack([_clip(dataset[i], list_file, i) for i in range(count)])
    return list(clips.split(batch_size))


def _clip(item: tuple[torch.Tensor, int] | SkippedSample, list_file: str | Path, index: int) -> torch.Tensor:
    from temporal_shift.data.dataset import SkippedSample

    if isinstance(item, SkippedSample):
        raise ValueError(f"{list_file}: calibration clip {index + 1} cannot be read: {item.reason}")
    return item[0]


# --- verification -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Parity:
    """How far an exported graph's outputs are from PyTorch's on the same inputs."""

    format: str
    runtime: str
    max_abs: float
    max_rel: float  # max abs difference / max abs PyTorch output
    inputs: str  # what was compared
    top1_agreement: float | None = None  # share of inputs whose argmax agrees (int8 checks)

    def line(self) -> str:
        agree = "" if self.top1_agreement is None else f", top-1 agreement {100 * self.top1_agreement:.1f}%"
        return (
            f"verified in {self.runtime}: max abs difference to PyTorch {self.max_abs:.2e}, max relative "
            f"difference {self.max_rel:.2e}{agree} ({self.inputs})"
        )


def _parity(format: str, got: torch.Tensor, expected: torch.Tensor, inputs: str, *, top1: bool = False) -> Parity:
    got, expected = got.float(), expected.float()
    diff = float((got - expected).abs().max())
    scale = float(expected.abs().max().clamp_min(1e-12))
    agree = float((got.argmax(-1) == expected.argmax(-1)).float().mean()) if top1 else None
    return Parity(
        format=format, runtime=RUNTIMES[format], max_abs=diff, max_rel=diff / scale, inputs=inputs, top1_agreement=agree
    )


def verify_export(
    model: ClipClassifier,
    path: str | Path,
    *,
    format: str,
    batch_size: int | None = None,
    size: int | None = None,
    seed: int = 0,
    clips: torch.Tensor | None = None,
    threads: int | None = None,
) -> Parity:
    """Run ``path`` in its runtime and PyTorch's ``model`` on the same clips; the differences.

    ``clips``: the inputs (e.g. calibration clips for an int8 model; then top-1 agreement is
    given too), else random ones of ``batch_size`` (default: the graph's static batch, else 3,
    which checks the dynamic batch)."""
    runtime = load_runtime(path, format=format, threads=threads)
    model = model.cpu().eval()
    static = runtime.input_shapes[0][0] if runtime.input_shapes else None
    top1 = clips is not None
    if clips is None:
        generator = torch.Generator().manual_seed(seed)
        side = _size(model, size)
        n = batch_size or static or 3
        clips = torch.randn(n, model.config.n_segment, model.config.input_channels, side, side, generator=generator)
        what = f"{n} random clip{'s' if n > 1 else ''}"
    else:
        what = f"{len(clips)} given clips"
    batches = clips.split(static) if static else [clips]
    with torch.no_grad():
        expected = model(clips)
    got = torch.cat([runtime(b)[0] for b in batches])
    return _parity(runtime.format, got, expected, what, top1=top1)


def verify_online_export(
    model: OnlineRecognizer,
    path: str | Path,
    *,
    format: str | None = None,
    size: int = 224,
    steps: int = 30,
    seed: int = 0,
    frames: torch.Tensor | None = None,
    threads: int | None = None,
) -> Parity:
    """Stream ``steps`` random frames (or ``frames``) through the exported step in its runtime and
    through PyTorch; the differences of the per-step logits."""
    given = frames is not None
    if frames is None:
        frames = torch.randn(steps, 3, size, size, generator=torch.Generator().manual_seed(seed))
        what = f"a {steps}-frame random stream"
    else:
        what = f"a {len(frames)}-frame stream"
    exported = ExportedStream(path, format=format, threads=threads)
    torch_stream = OnlineStream(model)
    expected = torch.stack([torch_stream.update(f) for f in frames])
    got = torch.stack([exported.update(f) for f in frames])
    return _parity(exported.runtime.format, got, expected, what, top1=given)


# --- onnxruntime shorthands (the names of the first release) ------------------------------------


def run_onnx(path: str | Path, clips: torch.Tensor) -> torch.Tensor:
    """Run an exported ONNX model in onnxruntime (CPU) on ``clips``."""
    return load_runtime(path, format="onnx")(clips)[0]


class OnnxStream(ExportedStream):
    """`ExportedStream` of an ONNX step in onnxruntime."""

    def __init__(self, path: str | Path, *, threads: int | None = None, spin: bool = False) -> None:
        """``threads``: onnxruntime intra-op threads (default: its own choice). ``spin=False``
        stops idle worker threads from busy-waiting between frames, which would otherwise
        steal the CPU from everything else in the process (decoding, drawing, PyTorch)."""
        from temporal_shift.engine.runtimes import OnnxRuntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        super().__init__(path, runtime=OnnxRuntime(path, threads=threads, spin=spin))
        self.session = self.runtime.session  # type: ignore[attr-defined]
