"""Online (streaming) TSM: one frame at a time with explicit shift buffers.

A causal TSM model shifts channels ``[0, C//fold_div)`` of every shifted layer's input
from frame t-1 to frame t. Streaming the same computation one frame at a time only
needs, per shifted layer, those channels of the previous frame: the layer's *buffer*.
Each step splices the buffer into the current frame's input and hands the current
frame's first ``C//fold_div`` channels on as the next buffer. Buffers start at zero,
which is the offline model's zero padding at t = 0, so over any clip the streaming
model's output at step t equals the offline causal model's per-frame output at t.

- `OnlineRecognizer` is the pure step ``forward(frame, *buffers) -> (logits, *new_buffers)``
  (exportable to ONNX; buffers are explicit inputs and outputs);
- `OnlineStream` keeps the buffers for you: ``update(frame) -> logits`` and ``reset()``.

When to reset: the buffers hold features of the *previous processed frame*, so reset
whenever the next frame is not the one that follows it in the stream the model was
trained on: a new source, a seek, or a gap (dropped frames). Otherwise the model mixes
unrelated frames, which is exactly the situation it never saw in training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from temporal_shift.models.base import ClipClassifier
from temporal_shift.ops.shift import TemporalShift


class _BufferRouting:
    """Per-call plumbing between `OnlineRecognizer.forward` and its `BufferedShift` layers."""

    def __init__(self) -> None:
        self.inputs: Sequence[Tensor] | None = None
        self.outputs: list[Tensor] = []

    def start(self, inputs: Sequence[Tensor] | None) -> None:
        self.inputs, self.outputs = inputs, []


class BufferedShift(nn.Module):
    """Causal shift of one frame: splice the previous frame's channels in, keep ours."""

    def __init__(self, net: nn.Module, fold_div: int, routing: _BufferRouting) -> None:
        super().__init__()
        self.net = net
        self.fold_div = fold_div
        self._routing = routing  # a plain attribute: not a submodule, not in the state dict

    def forward(self, x: Tensor) -> Tensor:
        fold = x.shape[1] // self.fold_div
        routing = self._routing
        index = len(routing.outputs)
        if routing.inputs is None:  # probing buffer shapes: a fresh stream
            previous = x.new_zeros((x.shape[0], fold, *tuple(x.shape[2:])))
        else:
            previous = routing.inputs[index]
        routing.outputs.append(x[:, :fold].clone())
        return self.net(torch.cat((previous, x[:, fold:]), dim=1))


class OnlineRecognizer(nn.Module):
    """The streaming step of a causal TSM (or TSN) recognizer, sharing its weights.

    ``forward(frame, *buffers)`` takes frames (N, C, H, W) of N independent streams and
    one buffer per shifted layer; it returns the per-frame logits (N, K) and the new
    buffers. `initial_buffers` gives the zero buffers of a fresh stream.
    """

    def __init__(self, model: ClipClassifier) -> None:  # the tsn family: checked here
        super().__init__()
        config = model.config
        if config.family != "tsn":
            raise ValueError(
                f"a {config.family} model cannot stream frame by frame: only the tsn family "
                "(TSN, or TSM with mode='causal') has a per-frame online form"
            )
        if config.shift and config.mode != "causal":
            raise ValueError(
                f"a {config.mode} TSM model cannot stream: its shift reads frame t+1, which a "
                "live stream does not have yet; train (or convert) it with mode='causal'"
            )
        if config.temporal_pool or config.non_local:
            what = "temporal_pool" if config.temporal_pool else "non_local"
            raise ValueError(f"a model with {what} looks at whole clips and cannot stream frame by frame")
        self.config = config
        self._routing = _BufferRouting()
        model = copy.deepcopy(model).eval()
        self.backbone = model.backbone
        self.head = model.head
        self.num_buffers = 0
        for name, module in list(self.backbone.named_modules()):
            if isinstance(module, TemporalShift):
                _replace(self.backbone, name, BufferedShift(module.net, module.fold_div, self._routing))
                self.num_buffers += 1
        self.eval()

    def forward(self, frame: Tensor, *buffers: Tensor) -> tuple[Tensor, ...]:
        if len(buffers) != self.num_buffers:
            raise ValueError(f"expected {self.num_buffers} shift buffers, got {len(buffers)}")
        self._routing.start(buffers)
        try:
            logits = self.head(self.backbone(frame))
            return (logits, *self._routing.outputs)
        finally:
            self._routing.start(None)

    @torch.no_grad()
    def initial_buffers(
        self, *, batch_size: int = 1, size: tuple[int, int] = (224, 224), device=None, dtype=None
    ) -> list[Tensor]:
        """Zero buffers of a fresh stream for frames of ``size`` (H, W)."""
        parameter = next(self.parameters())
        probe = torch.zeros(
            (batch_size, 3, *tuple(size)),
            device=device or parameter.device,
            dtype=dtype or parameter.dtype,
        )
        self._routing.start(None)
        try:
            self.backbone(probe)
            return [torch.zeros_like(b) for b in self._routing.outputs]
        finally:
            self._routing.start(None)

    def train(self, mode: bool = True) -> OnlineRecognizer:
        if mode:
            raise ValueError("OnlineRecognizer is for inference; train the offline causal model")
        return super().train(False)


def _replace(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


class OnlineStream:
    """A stream's state around an `OnlineRecognizer`: ``update(frame) -> logits``, ``reset()``."""

    def __init__(self, model: OnlineRecognizer) -> None:
        self.model = model.eval()
        self._buffers: list[Tensor] | None = None
        self._shape: tuple[int, ...] | None = None
        self.steps = 0

    def reset(self) -> None:
        """Forget the past: the next frame starts a new stream (zero buffers)."""
        self._buffers, self._shape, self.steps = None, None, 0

    @torch.inference_mode()
    def update(self, frame: Tensor) -> Tensor:
        """Logits (K,) for one normalised float frame (C, H, W) or (1, C, H, W)."""
        given = tuple(frame.shape)
        if frame.dim() == 3:
            frame = frame.unsqueeze(0)
        if frame.dim() != 4 or frame.shape[0] != 1 or frame.shape[1] != 3:
            raise ValueError(f"expected one RGB frame (3, H, W), got shape {given}")
        if self._shape is not None and tuple(frame.shape) != self._shape:
            h, w = self._shape[2:]
            raise ValueError(
                f"frame size {frame.shape[2]}x{frame.shape[3]} differs from this stream's {h}x{w}; "
                "call reset() before switching sources"
            )
        parameter = next(self.model.parameters())
        frame = frame.to(device=parameter.device, dtype=parameter.dtype)
        if self._buffers is None:
            self._buffers = self.model.initial_buffers(size=(frame.shape[2], frame.shape[3]))
            self._shape = tuple(frame.shape)
        logits, *self._buffers = self.model(frame, *self._buffers)
        self.steps += 1
        return logits[0]
