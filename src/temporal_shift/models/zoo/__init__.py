"""The paper's comparison models, as families of `ModelConfig` (``family=``).

Every family is built from a `ModelConfig` and keeps the recognizer's contract: clips
(N, T, 3, H, W) in, logits (N, K) out, the classifier in ``head``; so `tsm train`,
`tsm test`, checkpoints, export and `tsm bench` take them all. Each class says which
``archs`` it takes, its published ``input_size`` and ``frames``, and checks the rest
of the config in ``check_config``.

- tsn: `VideoRecognizer`, TSN (2D per frame, average consensus) and TSM (with shift);
- single_frame: `SingleFrame`, one frame per clip, the paper's 2D baseline.
"""

from torch import nn

from temporal_shift.models.recognizer import VideoRecognizer
from temporal_shift.models.zoo.single_frame import SingleFrame

FAMILIES: dict[str, type[nn.Module]] = {
    "tsn": VideoRecognizer,
    "single_frame": SingleFrame,
}

__all__ = ["FAMILIES", "SingleFrame"]
