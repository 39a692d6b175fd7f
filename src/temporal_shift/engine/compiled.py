"""Compiled inference: `torch.compile` with the per-kernel launch cost taken out.

At batch 1 a TSM-R50 forward is a few hundred small kernels; on a GPU the CPU that
launches them (and the Python around them) is slower than the GPU that runs them, so
the GPU waits. `compile_for_inference` compiles the whole model into one graph
(``fullgraph=True``: a graph break is an error, not a silent fallback) and, on CUDA,
captures it as a CUDA graph (``mode="reduce-overhead"``): one launch per forward.

Fixed input: a compiled model serves one input shape, dtype and device: the first it
sees (``example``, if given, which also compiles and warms it up at once: CUDA graphs
are recorded on the first calls, not on the timed or served ones). Another shape is an
error naming both shapes; compile again for it (a CUDA graph replays fixed shapes and
addresses, and a silent recompile would cost seconds to minutes in the middle of
serving). Inputs are copied into the graph's static buffer on each call; outputs are
copied out (a CUDA graph overwrites its outputs on the next replay).

Modes (``mode``): ``"auto"`` is ``"reduce-overhead"`` on CUDA and ``"default"``
elsewhere; any of `torch.compile`'s modes can be given.

The shift itself compiles to one pass: under ``torch.compile`` it is a functional form that
Inductor writes in the convolution's layout (`temporal_shift.ops.shift`; `tests/test_shift.py`
checks the generated code). A ResNet with residual shifts is compiled in its split form
(`engine.split_form`: the channels each shift moves as a tensor of their own, batch norms
folded), where that pass copies only the moved channels: TSM/TSN of ResNet-50 (T=8, 224,
batch 1, 2 CPU threads, inductor's default mode) went from 1.206 to 1.030; a batch of one clip
is shifted on the batch axis there (`split_form.shift_one_clip`). The split form is
a copy of the weights as they are when compiled: compile again after changing them.
Weight freezing (``torch._inductor.config.freezing``, oneDNN
weight prepacking) made no measurable difference on a CPU and is not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from temporal_shift.engine.split_form import split_form

MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


def resolve_mode(mode: str, device: torch.device) -> str:
    """The `torch.compile` mode that ``mode`` stands for on ``device`` (see the module doc)."""
    if mode not in MODES:
        raise ValueError(f"unknown compile mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "auto":
        return "reduce-overhead" if device.type == "cuda" else "default"
    return mode


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class CompiledInference:
    """A model compiled for inference on one input shape; call it like the model.

    ``model`` stays the eager module (its ``config`` and weights); calls go through the
    compiled graph of ``graph`` (``model``, or its split form) under `torch.inference_mode`.
    Built by `compile_for_inference`.
    """

    def __init__(
        self,
        model: nn.Module,
        compiled: Callable[[Tensor], Tensor],
        *,
        mode: str,
        cudagraphs: bool,
        graph: nn.Module | None = None,
    ) -> None:
        self.model = model
        self.graph = graph if graph is not None else model
        self.mode = mode
        self.cudagraphs = cudagraphs
        self._compiled = compiled
        self.input_spec: tuple[tuple[int, ...], torch.dtype, torch.device] | None = None

    def _check(self, x: Tensor) -> None:
        spec = (tuple(x.shape), x.dtype, x.device)
        if self.input_spec is None:
            self.input_spec = spec
        elif spec != self.input_spec:
            shape, dtype, device = self.input_spec
            raise ValueError(
                f"this model was compiled for input {shape} {dtype} on {device}, got {spec[0]} "
                f"{spec[1]} on {spec[2]}; a compiled model serves one input shape: call "
                "compile_for_inference again with an example of the new shape"
            )

    def __call__(self, x: Tensor) -> Tensor:
        self._check(x)
        with torch.inference_mode():
            out = self._compiled(x)
            # A CUDA graph writes its outputs into the same memory on every replay.
            return out.clone() if self.cudagraphs else out

    def warm_up(self, example: Tensor, *, calls: int = 3) -> None:
        """Compile now and run ``calls`` forwards (CUDA graphs are recorded on the first ones)."""
        for _ in range(calls):
            self(example)
        if example.device.type == "cuda":
            torch.cuda.synchronize(example.device)

    def __repr__(self) -> str:
        spec = "no input yet" if self.input_spec is None else f"input {self.input_spec[0]}"
        return f"CompiledInference({type(self.model).__name__}, mode={self.mode!r}, {spec})"


def compile_for_inference(
    model: nn.Module,
    *,
    mode: str = "auto",
    example: Tensor | None = None,
    fullgraph: bool = True,
    backend: str = "inductor",
    warmup: int = 3,
) -> CompiledInference:
    """``model`` (put in eval mode; a residual-shift ResNet in its split form) compiled for
    fixed-shape inference; see the module doc.

    ``example`` (optional) is a batch of the shape to serve: the model is compiled and
    warmed up with it now (``warmup`` calls). ``backend`` other than inductor (``"eager"``,
    ``"aot_eager"``) is for checking the graph capture alone; the modes are inductor's.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    device = _model_device(model)
    resolved = resolve_mode(mode, device)
    kwargs: dict[str, Any] = {"fullgraph": fullgraph, "dynamic": False, "backend": backend}
    if backend == "inductor":
        kwargs["mode"] = resolved
    model.eval()
    graph = split_form(model, one_clip_shift=True) or model
    cudagraphs = backend == "inductor" and device.type == "cuda" and resolved in _CUDAGRAPH_MODES
    compiled = torch.compile(graph, **kwargs)
    runner = CompiledInference(model, compiled, mode=resolved, cudagraphs=cudagraphs, graph=graph)
    if example is not None:
        if example.device != device:
            raise ValueError(f"example is on {example.device} but the model is on {device}")
        runner.warm_up(example, calls=max(warmup, 1))
    return runner
