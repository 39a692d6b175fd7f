"""Run an exported model in the runtime its format is for, with one interface.

`load_runtime(path)` opens an exported file in its runtime and gives a `Runtime`: call it
with the graph's inputs (torch tensors on the CPU) and it returns the outputs as torch
tensors, in the order the graph names them. Which runtime runs which format:

- ``onnx``: onnxruntime (CPU execution provider);
- ``executorch``: ExecuTorch's runtime (``executorch.runtime``) with the XNNPACK delegate;
- ``openvino``: OpenVINO on the CPU with the f32 precision hint (its default on CPUs
  with bf16 support is bf16, which would not be the model that was exported);
- ``tensorrt``: a TensorRT engine on a CUDA device (fp32 or fp16, as built);
- ``torchscript`` / ``exported``: torch.jit / torch.export in PyTorch itself.

`ExportedStream` is `models.online.OnlineStream`'s interface over an exported streaming
step, in any of these runtimes. The runtimes are optional: a missing one is a one-line error
naming the extra that installs it (``deploy``).
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

FORMATS = ("onnx", "executorch", "openvino", "torchscript", "exported", "tensorrt")
# the file each format writes (the OpenVINO IR is an .xml with its weights in a .bin beside it)
SUFFIXES = {
    "onnx": ".onnx",
    "executorch": ".pte",
    "openvino": ".xml",
    "torchscript": ".ts",
    "exported": ".pt2",
    "tensorrt": ".engine",
}
RUNTIMES = {
    "onnx": "onnxruntime",
    "executorch": "ExecuTorch (XNNPACK)",
    "openvino": "OpenVINO (CPU, f32)",
    "torchscript": "torch.jit",
    "exported": "torch.export",
    "tensorrt": "TensorRT",
}
# the Python package each format needs, and the extra that installs it
PACKAGES = {
    "onnx": ("onnxruntime",),
    "executorch": ("executorch",),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt",),
}
EXTRA = "pip install 'temporal-shift[deploy]'"
# the extra file of an exported TorchScript module that records its input/output names and input shapes
TORCHSCRIPT_SIGNATURE = "temporal_shift_signature.json"


def require(module: str, *, what: str) -> ModuleType:
    """Import ``module`` or raise a one-line ValueError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = "pip install tensorrt (with CUDA)" if module.startswith("tensorrt") else EXTRA
        raise ValueError(f"{what} needs {module.split('.')[0]}, which is not installed: {hint} ({exc})") from None


def format_of(path: str | Path, format: str | None = None) -> str:
    """``format`` if given (checked), else the format the file's suffix says."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    for name, known in SUFFIXES.items():
        if suffix == known:
            return name
    if suffix in (".pt", ".plan"):
        return "torchscript" if suffix == ".pt" else "tensorrt"
    raise ValueError(
        f"{path}: cannot tell the format from the suffix {suffix!r}; give the format ({', '.join(FORMATS)})"
    )


class Runtime:
    """An exported graph opened in its runtime: ``runtime(*inputs) -> list of outputs``.

    ``input_shapes``: each input's shape (None for a dynamic dim) where the format records
    it; ``input_names`` / ``output_names`` likewise (empty where the format has none).
    """

    format: str = ""
    input_names: list[str]
    output_names: list[str]
    input_shapes: list[tuple[int | None, ...]]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return RUNTIMES[self.format]


class OnnxRuntime(Runtime):
    format = "onnx"

    def __init__(self, path: Path, *, threads: int | None = None, spin: bool = False) -> None:
        ort = require("onnxruntime", what="running ONNX models")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # idle workers busy-wait between calls unless told not to, stealing the CPU from the rest
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_shapes = [
            tuple(d if isinstance(d, int) else None for d in i.shape) for i in self.session.get_inputs()
        ]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feeds = {name: _numpy(x) for name, x in zip(self.input_names, inputs, strict=True)}
        return [torch.from_numpy(np.asarray(o)) for o in self.session.run(self.output_names, feeds)]


class ExecuTorchRuntime(Runtime):
    format = "executorch"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        runtime = require("executorch.runtime", what="running ExecuTorch programs")
        if threads:
            portable = require("executorch.extension.pybindings.portable_lib", what="running ExecuTorch programs")
            portable._unsafe_reset_threadpool(threads)
        self.program = runtime.Runtime.get().load_program(Path(path))
        self.method = self.program.load_method("forward")
        meta = self.method.metadata
        self.input_shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        self.input_names, self.output_names = [], []

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return [o.clone() for o in self.method.execute([x.detach().cpu().contiguous() for x in inputs])]


class OpenVinoRuntime(Runtime):
    """``keep_buffers``: a streaming step's buffers stay in the infer request as OpenVINO states
    (`buffers_as_states`): the runtime is then called with the frame alone and returns the
    logits, and `reset_states` starts a fresh stream. ``input_names`` / ``input_shapes`` are
    the file's either way."""

    format = "openvino"

    def __init__(self, path: Path, *, threads: int | None = None, keep_buffers: bool = False) -> None:
        ov = require("openvino", what="running OpenVINO models")
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        model = core.read_model(str(path))
        self.input_names = [p.get_any_name() for p in model.inputs]
        self.output_names = [p.get_any_name() for p in model.outputs]
        self.input_shapes = [
            tuple(d.get_length() if d.is_static else None for d in p.get_partial_shape()) for p in model.inputs
        ]
        self.states = buffers_as_states(model) if keep_buffers else 0
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        results = self.request.infer([_numpy(x) for x in inputs], share_inputs=False)
        return [torch.from_numpy(np.array(results[out])) for out in self.compiled.outputs]

    def reset_states(self) -> None:
        """Every state back to its initial value (zeros): a fresh stream."""
        self.request.reset_state()

    def __copy__(self) -> OpenVinoRuntime:
        """The same compiled model with an infer request of its own, and so states of its own."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.request = self.compiled.create_infer_request()
        return clone


def buffers_as_states(model: Any) -> int:
    """Turn a streaming step's buffers (inputs ``buffer_i``, outputs ``new_buffer_i``, as
    `engine.export.export_online` names them) into OpenVINO states, in place: each ``buffer_i``
    becomes a ReadValue of a variable that starts at zeros, each ``new_buffer_i`` an Assign of it.
    The infer request then keeps the buffers between calls instead of taking 10 inputs and giving
    10 outputs a frame, which OpenVINO and its Python binding handle at a cost that matters next
    to one frame of MobileNetV2 (measured on its causal step, T=8, 224, 2 threads, 30 rounds of
    20 steps side by side: TSM/TSN 1.30 -> 1.17 in f32, 1.64 -> 1.29 in int8). Returns how many
    buffers became states (0, the model unchanged, for one without them: a TSN step, or a file
    from elsewhere whose buffers do not pair up or are not static f32)."""
    import openvino as ov
    from openvino import opset6
    from openvino.op.util import Variable, VariableInfo

    def named(port: Any, prefix: str) -> str | None:
        names = [n for n in port.get_names() if n.startswith(prefix) and n[len(prefix) :].isdigit()]
        return names[0][len(prefix) :] if names else None

    parameters = {i: p for p in model.get_parameters() if (i := named(p.output(0), "buffer_")) is not None}
    results = {i: r for r in model.get_results() if (i := named(r.output(0), "new_buffer_")) is not None}
    if not parameters or parameters.keys() != results.keys():
        return 0
    for parameter in parameters.values():  # a state of this kind: static f32, as export_online writes
        if not parameter.get_output_partial_shape(0).is_static or parameter.get_output_element_type(0) != ov.Type.f32:
            return 0
    for i, parameter in parameters.items():
        shape = parameter.get_output_partial_shape(0)
        info = VariableInfo()
        info.variable_id, info.data_type, info.data_shape = f"buffer_{i}", ov.Type.f32, shape
        variable = Variable(info)
        read = opset6.read_value(opset6.constant(np.zeros(shape.to_shape(), np.float32)), variable)
        for target in list(parameter.output(0).get_target_inputs()):
            target.replace_source_output(read.output(0))
        source = results[i].input(0).get_source_output()
        assign = opset6.assign(source.get_node(), variable)  # the binding takes a node: its output is set next
        assign.input(0).replace_source_output(source)
        model.remove_result(results[i])
        model.remove_parameter(parameter)
        model.add_sinks([assign])
    model.validate_nodes_and_infer_types()
    return len(parameters)


class TensorRTRuntime(Runtime):
    format = "tensorrt"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        trt = require("tensorrt", what="running TensorRT engines")
        if not torch.cuda.is_available():
            raise ValueError(f"{path}: a TensorRT engine runs on a CUDA device, and none is available")
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise ValueError(f"{path}: not a TensorRT engine built by this TensorRT version")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) != mode]
        self.input_shapes = [
            tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(n)) for n in self.input_names
        ]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        stream = torch.cuda.current_stream()
        keep = []
        for name, x in zip(self.input_names, inputs, strict=True):
            x = x.detach().to("cuda", torch.float32).contiguous()
            keep.append(x)
            self.context.set_input_shape(name, tuple(x.shape))
            self.context.set_tensor_address(name, x.data_ptr())
        outputs = []
        for name in self.output_names:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), device="cuda", dtype=torch.float32)
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return [o.cpu() for o in outputs]


class TorchRuntime(Runtime):
    """A TorchScript module or a torch.export program, run in PyTorch."""

    def __init__(self, path: Path, *, format: str) -> None:
        import warnings

        self.format = format
        self.input_names, self.output_names = [], []
        if format == "torchscript":
            extra = {TORCHSCRIPT_SIGNATURE: ""}
            with warnings.catch_warnings():  # torch.jit is deprecated upstream but still works
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(path), _extra_files=extra)
            # written by engine.export; a TorchScript file from elsewhere has none
            signature = json.loads(extra[TORCHSCRIPT_SIGNATURE] or '{"inputs": [], "outputs": [], "shapes": []}')
            self.input_names, self.output_names = signature["inputs"], signature["outputs"]
            self.input_shapes = [tuple(shape) for shape in signature["shapes"]]
        else:
            program = torch.export.load(str(path))
            self.module = program.module()
            specs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
            nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
            self.input_shapes = [
                tuple(d if isinstance(d, int) else None for d in nodes[s.arg.name].meta["val"].shape) for s in specs
            ]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            out = self.module(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]


def load_runtime(path: str | Path, *, format: str | None = None, threads: int | None = None) -> Runtime:
    """Open the exported file ``path`` in the runtime of its ``format`` (default: from the
    suffix). ``threads``: the runtime's CPU threads (default: its own choice)."""
    path = Path(path)
    format = format_of(path, format)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    if format == "onnx":
        return OnnxRuntime(path, threads=threads)
    if format == "executorch":
        return ExecuTorchRuntime(path, threads=threads)
    if format == "openvino":
        return OpenVinoRuntime(path, threads=threads)
    if format == "tensorrt":
        return TensorRTRuntime(path, threads=threads)
    return TorchRuntime(path, format=format)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().float().contiguous().numpy()


# --- the streaming step, in any runtime ----------------------------------------------------


class ExportedStream:
    """`OnlineStream`'s interface (``update(frame) -> logits``, ``reset()``) over a streaming
    step exported with ``tsm export --online``: inputs ``(frame, *buffers)``, outputs
    ``(logits, *new_buffers)``; each step's new buffers are fed back as the next one's (in
    OpenVINO they stay in the runtime as states: `buffers_as_states`)."""

    def __init__(
        self, path: str | Path, *, format: str | None = None, threads: int | None = None, runtime: Runtime | None = None
    ) -> None:
        path = Path(path)
        if runtime is None and format_of(path, format) == "openvino" and path.is_file():
            runtime = OpenVinoRuntime(path, threads=threads, keep_buffers=True)
        self.runtime = runtime if runtime is not None else load_runtime(path, format=format, threads=threads)
        shapes = self.runtime.input_shapes
        names = self.runtime.input_names
        if (names and names[0] != "frame") or (shapes and (len(shapes[0]) != 4 or shapes[0][0] not in (1, None))):
            raise ValueError(f"{path}: not a streaming-step export (no 'frame' input); use tsm export --online")
        frame = _static((1, *shapes[0][1:])) if shapes else None
        buffers = [_static(s) for s in shapes[1:]]
        if frame is None or None in buffers:
            raise ValueError(
                f"{path}: the streaming step's inputs have no static shapes; re-export it with tsm export --online"
            )
        self.frame_shape = frame  # (1, C, H, W)
        self._buffer_shapes = [b for b in buffers if b is not None]
        # an OpenVINO step keeps its buffers as states (`buffers_as_states`): it takes the frame alone
        self._states = getattr(self.runtime, "states", 0)
        self.reset()

    def __copy__(self) -> ExportedStream:
        """Another stream over the same loaded model, with buffers of its own (in OpenVINO, its
        own infer request: the states live there); `apps.stream.StreamModel.new_stream` makes
        one per connection this way."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        if self._states:
            clone.runtime = copy.copy(self.runtime)
        return clone

    @property
    def num_classes(self) -> int | None:
        """The size of the logits, known after the first step (None before)."""
        return self._num_classes

    def reset(self) -> None:
        # with states the runtime keeps the buffers (zeroed here); else this stream feeds them
        self._buffers = [] if self._states else [torch.zeros(shape) for shape in self._buffer_shapes]
        if self._states:
            self.runtime.reset_states()  # type: ignore[attr-defined]
        self.steps = 0
        if not hasattr(self, "_num_classes"):
            self._num_classes: int | None = None

    def update(self, frame: torch.Tensor) -> torch.Tensor:
        if frame.dim() == 3:
            frame = frame.unsqueeze(0)
        if tuple(frame.shape) != self.frame_shape:
            raise ValueError(f"expected a frame of shape {self.frame_shape}, got {tuple(frame.shape)}")
        logits, *self._buffers = self.runtime(frame.detach().cpu().float(), *self._buffers)
        self.steps += 1
        self._num_classes = int(logits.shape[-1])
        return logits[0]


def _static(shape: Sequence[int | None]) -> tuple[int, ...] | None:
    """``shape`` when every dim is known, else None."""
    dims = tuple(d for d in shape if d is not None)
    return dims if len(dims) == len(shape) else None


def run_steps(runtime: Runtime | Sequence[Any], frames: torch.Tensor, buffers: Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits (S, K) of ``frames`` (S, C, H, W) streamed through a step ``runtime`` from ``buffers``."""
    logits = []
    state = list(buffers)
    for frame in frames:
        out, *state = runtime(frame.unsqueeze(0), *state)  # type: ignore[operator]
        logits.append(out[0])
    return torch.stack(logits)
