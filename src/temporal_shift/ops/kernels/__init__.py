"""Fused implementations of the temporal shift.

`triton_shift` holds Triton kernels for CUDA tensors (forward, backward and the in-place
inference pair). It is imported lazily by `temporal_shift.ops.shift` the first time a CUDA
tensor is shifted, so that CPU-only use never pays for importing Triton, and so that
tests can run the same kernels on the CPU with ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import importlib.util


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with the CUDA builds of PyTorch)."""
    return importlib.util.find_spec("triton") is not None
