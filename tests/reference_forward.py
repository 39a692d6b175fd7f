"""Independent, straightforward forward passes of TSM/TSN checkpoints (a test helper).

Written from the published descriptions of the models and the known key layouts; it
reads raw state dicts by key and shares no code with ``temporal_shift``. Everything runs
in float64, batch norm is written out in eval mode, the temporal shift is an explicit
loop over frames and channels, and the non-local block is spelled out with einsum.

Layouts: ``"reference"`` (the paper's release: ``base_model.*``, ``new_fc.*``) and
``"mmaction2"`` (``backbone.*`` with ConvModule ``.conv``/``.bn``, ``cls_head.fc_cls.*``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

BN_EPS = 1e-5
# MobileNetV2 inverted-residual settings: expansion t, channels c, repeats n, stride s.
MOBILENET_V2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def shift_reference(x: Tensor, n_segment: int, fold_div: int = 8, mode: str = "bidirectional") -> Tensor:
    """Temporal shift of (N*T, C, H, W), one frame and channel at a time.

    Bidirectional: channel c of frame t takes frame t+1 for c < C//fold_div, frame t-1
    for C//fold_div <= c < 2*(C//fold_div), frame t otherwise. Causal: frame t-1 for
    c < C//fold_div, frame t otherwise. Zero if that frame is outside the clip.
    """
    a = x.detach().cpu().numpy()
    nt, c, h, w = a.shape
    a = a.reshape(nt // n_segment, n_segment, c, h, w)
    out = np.zeros_like(a)
    fold = c // fold_div
    for t in range(n_segment):
        for ch in range(c):
            if ch < fold:
                src = t - 1 if mode == "causal" else t + 1
            elif ch < 2 * fold and mode != "causal":
                src = t - 1
            else:
                src = t
            if 0 <= src < n_segment:
                out[:, t, ch] = a[:, src, ch]
    return torch.from_numpy(out.reshape(nt, c, h, w))


def temporal_max_pool_reference(x: Tensor, n_segment: int) -> Tensor:
    """Max over frames {2t-1, 2t, 2t+1} inside each clip (kernel 3, stride 2, padding 1)."""
    nt, c, h, w = x.shape
    clips = x.reshape(nt // n_segment, n_segment, c, h, w)
    frames = []
    for t in range((n_segment - 1) // 2 + 1):
        window = [s for s in (2 * t - 1, 2 * t, 2 * t + 1) if 0 <= s < n_segment]
        frames.append(torch.stack([clips[:, s] for s in window]).amax(dim=0))
    return torch.stack(frames, dim=1).reshape(-1, c, h, w)


def batch_norm_eval(x: Tensor, state: dict[str, Tensor], prefix: str) -> Tensor:
    """(x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel (dim 1)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = state[f"{prefix}.running_mean"].view(shape)
    var = state[f"{prefix}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + BN_EPS) * state[f"{prefix}.weight"].view(shape) + state[f"{prefix}.bias"].view(
        shape
    )


def conv(x: Tensor, weight: Tensor, *, stride: int = 1, bias: Tensor | None = None) -> Tensor:
    """2D convolution with 'same'-style padding k//2; groups from the weight's input dim."""
    groups = x.shape[1] // weight.shape[1]
    return F.conv2d(x, weight, bias, stride=stride, padding=weight.shape[-1] // 2, groups=groups)


def non_local_reference(x: Tensor, state: dict[str, Tensor], prefix: str, n_segment: int) -> Tensor:
    """Embedded-Gaussian non-local block over each clip; keys/values max-pooled 2x2 in space."""
    nt, c, h, w = x.shape
    clip = x.reshape(nt // n_segment, n_segment, c, h, w).permute(0, 2, 1, 3, 4)  # N C T H W

    def conv1x1x1(name: str, inp: Tensor) -> Tensor:
        weight = state[f"{prefix}.{name}.weight"].flatten(1)
        bias = state[f"{prefix}.{name}.bias"]
        return torch.einsum("oc,ncthw->nothw", weight, inp) + bias.view(1, -1, 1, 1, 1)

    def pool2x2(inp: Tensor) -> Tensor:
        n, k, t, hh, ww = inp.shape
        inp = inp[..., : hh // 2 * 2, : ww // 2 * 2]
        return inp.reshape(n, k, t, hh // 2, 2, ww // 2, 2).amax(dim=(4, 6))

    theta = conv1x1x1("theta", clip).flatten(2)  # N, K, THW
    phi = pool2x2(conv1x1x1("phi.0", clip)).flatten(2)  # N, K, THW'
    g = pool2x2(conv1x1x1("g.0", clip)).flatten(2)  # N, K, THW'
    attention = torch.softmax(torch.einsum("nkq,nkp->nqp", theta, phi), dim=-1)
    y = torch.einsum("nqp,nkp->nkq", attention, g).reshape(clip.shape[0], -1, n_segment, h, w)
    w_y = batch_norm_eval(conv1x1x1("W.0", y), state, f"{prefix}.W.1")
    out = w_y + clip
    return out.permute(0, 2, 1, 3, 4).reshape(nt, c, h, w)


class _Names:
    """Parameter names of one layout."""

    def __init__(self, layout: str) -> None:
        if layout not in ("reference", "mmaction2"):
            raise ValueError(layout)
        self.mm = layout == "mmaction2"
        self.root = "backbone" if self.mm else "base_model"
        self.fc = "cls_head.fc_cls" if self.mm else "new_fc"

    def conv(self, block: str, k: int) -> str:
        return f"{block}.conv{k}.conv" if self.mm else f"{block}.conv{k}"

    def bn(self, block: str, k: int) -> str:
        return f"{block}.conv{k}.bn" if self.mm else f"{block}.bn{k}"

    def stem(self) -> tuple[str, str]:
        if self.mm:
            return f"{self.root}.conv1.conv", f"{self.root}.conv1.bn"
        return f"{self.root}.conv1", f"{self.root}.bn1"

    def downsample(self, block: str) -> tuple[str, str]:
        if self.mm:
            return f"{block}.downsample.conv", f"{block}.downsample.bn"
        return f"{block}.downsample.0", f"{block}.downsample.1"


def _prepare(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return {k: v.double() if v.is_floating_point() else v for k, v in state.items()}


def _has_prefix(state: dict[str, Tensor], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in state)


def _consensus(features: Tensor, state: dict[str, Tensor], fc: str, n: int) -> Tensor:
    """Per-frame linear classifier, then the average of the frames' scores."""
    scores = features @ state[f"{fc}.weight"].T + state[f"{fc}.bias"]
    return scores.reshape(n, -1, scores.shape[-1]).mean(dim=1)


def resnet_forward(
    state: dict[str, Tensor], x: Tensor, *, n_segment: int, fold_div: int = 8, layout: str = "reference"
) -> Tensor:
    """Logits (N, K) of a TSM/TSN ResNet checkpoint for clips x (N, T, 3, H, W)."""
    state = _prepare(state)
    names = _Names(layout)
    n, t = x.shape[:2]
    assert t == n_segment
    h = x.double().reshape(n * t, *x.shape[2:])
    stem_conv, stem_bn = names.stem()
    h = torch.relu(batch_norm_eval(conv(h, state[f"{stem_conv}.weight"], stride=2), state, stem_bn))
    h = F.max_pool2d(h, kernel_size=3, stride=2, padding=1)
    frames = n_segment
    for layer in range(1, 5):
        stage = f"{names.root}.layer{layer}"
        if _has_prefix(state, f"{stage}.net."):  # temporal pool wraps the stage
            h = temporal_max_pool_reference(h, frames)
            frames = (frames - 1) // 2 + 1
            stage = f"{stage}.net"
        j = 0
        while _has_prefix(state, f"{stage}.{j}."):
            block = f"{stage}.{j}"
            has_nl = _has_prefix(state, f"{block}.nl.")
            core = f"{block}.block" if has_nl else block
            in_place = _has_prefix(state, f"{core}.net.")
            if in_place:
                core = f"{core}.net"
                h = shift_reference(h, frames, fold_div)
            stride = 2 if layer > 1 and j == 0 else 1
            h = _resnet_block(h, state, names, core, stride=stride, frames=frames, fold_div=fold_div)
            if has_nl:
                h = non_local_reference(h, state, f"{block}.nl", frames)
            j += 1
    features = h.mean(dim=(2, 3))
    return _consensus(features, state, names.fc, n)


def _resnet_block(
    x: Tensor, state: dict[str, Tensor], names: _Names, block: str, *, stride: int, frames: int, fold_div: int
) -> Tensor:
    """A torchvision-style bottleneck (conv1 1x1, conv2 3x3 strided, conv3 1x1) or basic block."""

    def conv_weight(k: int) -> tuple[Tensor, bool]:
        base = names.conv(block, k)
        if f"{base}.net.weight" in state:  # residual shift before this conv
            return state[f"{base}.net.weight"], True
        return state[f"{base}.weight"], False

    w1, shifted = conv_weight(1)
    out = shift_reference(x, frames, fold_div) if shifted else x
    bottleneck = f"{names.conv(block, 3)}.weight" in state
    if bottleneck:
        out = torch.relu(batch_norm_eval(conv(out, w1), state, names.bn(block, 1)))
        out = torch.relu(batch_norm_eval(conv(out, conv_weight(2)[0], stride=stride), state, names.bn(block, 2)))
        out = batch_norm_eval(conv(out, conv_weight(3)[0]), state, names.bn(block, 3))
    else:
        out = torch.relu(batch_norm_eval(conv(out, w1, stride=stride), state, names.bn(block, 1)))
        out = batch_norm_eval(conv(out, conv_weight(2)[0]), state, names.bn(block, 2))
    ds_conv, ds_bn = names.downsample(block)
    identity = x
    if f"{ds_conv}.weight" in state:
        identity = batch_norm_eval(conv(x, state[f"{ds_conv}.weight"], stride=stride), state, ds_bn)
    return torch.relu(out + identity)


def mobilenet_v2_forward(
    state: dict[str, Tensor], x: Tensor, *, n_segment: int, fold_div: int = 8, mode: str = "bidirectional"
) -> Tensor:
    """Logits (N, K) of a reference-release TSM/TSN MobileNetV2 checkpoint for x (N, T, 3, H, W)."""
    state = _prepare(state)
    n, t = x.shape[:2]
    assert t == n_segment
    relu6 = lambda v: v.clamp(0.0, 6.0)  # noqa: E731
    f = "base_model.features"
    h = x.double().reshape(n * t, *x.shape[2:])
    h = relu6(batch_norm_eval(conv(h, state[f"{f}.0.0.weight"], stride=2), state, f"{f}.0.1"))
    index, channels = 1, h.shape[1]
    for expand, out_channels, repeats, first_stride in MOBILENET_V2_SETTINGS:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            p = f"{f}.{index}.conv"
            if expand == 1:
                out = relu6(batch_norm_eval(conv(h, state[f"{p}.0.weight"], stride=stride), state, f"{p}.1"))
                out = batch_norm_eval(conv(out, state[f"{p}.3.weight"]), state, f"{p}.4")
            else:
                if f"{p}.0.net.weight" in state:
                    out, w_pw = shift_reference(h, n_segment, fold_div, mode), state[f"{p}.0.net.weight"]
                else:
                    out, w_pw = h, state[f"{p}.0.weight"]
                out = relu6(batch_norm_eval(conv(out, w_pw), state, f"{p}.1"))
                out = relu6(batch_norm_eval(conv(out, state[f"{p}.3.weight"], stride=stride), state, f"{p}.4"))
                out = batch_norm_eval(conv(out, state[f"{p}.6.weight"]), state, f"{p}.7")
            h = h + out if stride == 1 and channels == out_channels else out
            index, channels = index + 1, out_channels
    h = relu6(batch_norm_eval(conv(h, state[f"{f}.{index}.0.weight"]), state, f"{f}.{index}.1"))
    return _consensus(h.mean(dim=(2, 3)), state, "new_fc", n)
