"""Export a recognizer to ONNX, TorchScript or a torch.export program, and verify the result.

Every exported model takes clips (N, T, C, H, W) with a dynamic batch size N and returns
logits (N, num_classes). ONNX files are checked in onnxruntime against PyTorch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from temporal_shift.models.base import ClipClassifier
from temporal_shift.models.online import OnlineRecognizer

FORMATS = ("onnx", "torchscript", "exported")
INPUT_NAME = "clips"
OUTPUT_NAME = "logits"


def example_input(model: ClipClassifier, *, batch_size: int = 2, size: int | None = None) -> torch.Tensor:
    """A random clip batch of the shape the model expects (``size``: default, its published one)."""
    return torch.randn(batch_size, model.config.n_segment, model.config.input_channels, *(_size(model, size),) * 2)


def _size(model: ClipClassifier, size: int | None) -> int:
    return int(getattr(model, "input_size", 224)) if size is None else size


def export_model(
    model: ClipClassifier,
    out: str | Path,
    *,
    format: str = "onnx",
    size: int | None = None,
    opset: int = 18,
) -> Path:
    """Write ``model`` (any model family, in eval mode, on the CPU) to ``out`` in ``format``;
    returns the path. ``size``: the traced input's height and width (default: the model's
    published input size, 224; C3D 112)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    x = example_input(model, size=size)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        if format == "onnx":
            _require_onnx()
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                dynamic_shapes={"x": {0: batch}},
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
            assert program is not None  # None only without dynamo=True
            program.save(str(out))
        elif format == "torchscript":
            with warnings.catch_warnings():  # torch.jit is deprecated upstream but still works
                warnings.simplefilter("ignore", FutureWarning)
                traced = torch.jit.trace(model, x)
            traced.save(str(out))
        else:
            exported = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
            torch.export.save(exported, str(out))
    return out


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"ONNX export needs the 'export' extra: pip install 'temporal-shift[export]' ({exc})") from exc


def run_onnx(path: str | Path, clips: torch.Tensor) -> torch.Tensor:
    """Run an exported ONNX model in onnxruntime (CPU) on ``clips``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ValueError("running ONNX models needs onnxruntime: pip install onnxruntime") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: clips.cpu().numpy()})
    return torch.from_numpy(np.asarray(output))


def verify_export(
    model: ClipClassifier, path: str | Path, *, format: str, batch_size: int = 3, size: int | None = None, seed: int = 0
) -> float:
    """Max relative difference between the exported file's and PyTorch's logits on random input."""
    generator = torch.Generator().manual_seed(seed)
    side = _size(model, size)
    clips = torch.randn(
        batch_size, model.config.n_segment, model.config.input_channels, side, side, generator=generator
    )
    model = model.cpu().eval()
    with torch.no_grad():
        expected = model(clips)
        if format == "onnx":
            got = run_onnx(path, clips)
        elif format == "torchscript":
            got = torch.jit.load(str(path))(clips)
        else:
            got = torch.export.load(str(path)).module()(clips)
    scale = expected.abs().max().clamp_min(1e-12)
    return float((got - expected).abs().max() / scale)


# --- the streaming step of an online model ---------------------------------------------


def export_online(model: OnlineRecognizer, out: str | Path, *, size: int = 224, opset: int = 18) -> Path:
    """Write the streaming step ``(frame, *buffers) -> (logits, *new_buffers)`` as ONNX.

    Inputs are named ``frame`` (1, 3, size, size) and ``buffer_0`` ...; outputs ``logits``
    and ``new_buffer_0`` ...; a caller feeds each step's ``new_buffer_i`` back as ``buffer_i``.
    """
    _require_onnx()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    buffers = model.initial_buffers(size=(size, size))
    frame = torch.zeros(1, 3, size, size)
    n = len(buffers)
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (frame, *buffers),
            dynamo=True,
            input_names=["frame"] + [f"buffer_{i}" for i in range(n)],
            output_names=[OUTPUT_NAME] + [f"new_buffer_{i}" for i in range(n)],
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    assert program is not None  # None only without dynamo=True
    program.save(str(out))
    return out


class OnnxStream:
    """`OnlineStream`'s interface over an exported streaming step run in onnxruntime."""

    def __init__(self, path: str | Path, *, threads: int | None = None, spin: bool = False) -> None:
        """``threads``: onnxruntime intra-op threads (default: its own choice). ``spin=False``
        stops idle worker threads from busy-waiting between frames, which would otherwise
        steal the CPU from everything else in the process (decoding, drawing, PyTorch)."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ValueError("running ONNX models needs onnxruntime: pip install onnxruntime") from exc
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if not inputs or inputs[0].name != "frame":
            raise ValueError(f"{path}: not a streaming-step export (no 'frame' input); use tsm export --online")
        self._frame_shape = tuple(inputs[0].shape)
        self._buffer_inputs = [(i.name, tuple(i.shape)) for i in inputs[1:]]
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.reset()

    def reset(self) -> None:
        self._buffers = [np.zeros(shape, dtype=np.float32) for _, shape in self._buffer_inputs]
        self.steps = 0

    def update(self, frame: torch.Tensor) -> torch.Tensor:
        if frame.dim() == 3:
            frame = frame.unsqueeze(0)
        if tuple(frame.shape) != self._frame_shape:
            raise ValueError(f"expected a frame of shape {self._frame_shape}, got {tuple(frame.shape)}")
        feeds = {"frame": frame.detach().cpu().float().numpy()}
        feeds.update({name: b for (name, _), b in zip(self._buffer_inputs, self._buffers, strict=True)})
        logits, *self._buffers = self.session.run(self._outputs, feeds)
        self.steps += 1
        return torch.from_numpy(np.asarray(logits))[0]


def verify_online_export(
    model: OnlineRecognizer, path: str | Path, *, size: int = 224, steps: int = 30, seed: int = 0
) -> float:
    """Max relative difference between onnxruntime and PyTorch over a random ``steps``-frame stream."""
    from temporal_shift.models.online import OnlineStream

    frames = torch.randn(steps, 3, size, size, generator=torch.Generator().manual_seed(seed))
    torch_stream, onnx_stream = OnlineStream(model), OnnxStream(path)
    expected = torch.stack([torch_stream.update(f) for f in frames])
    got = torch.stack([onnx_stream.update(f) for f in frames])
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))
