"""The lowest layer: the temporal shift op and what runs it.

- `shift`: `temporal_shift` / `TemporalShift` (the registered op, its adjoint backward, the
  implementation per context: eager, compiled, traced/exported);
- `kernels`: Triton kernels of the shift on CUDA;
- `small_maps`: convolutions that compute only the taps that meet small feature maps (opt-in);
- `runtime`: device choice, torchrun/DDP, the CPU allocator setting.

Nothing here imports another layer of the package.
"""
