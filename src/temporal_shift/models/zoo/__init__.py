"""The paper's comparison models, as families of `ModelConfig` (``family=``).

Every family is a `models.base.ClipClassifier` built from a `ModelConfig` (clips
(N, T, 3, H, W) in, logits (N, K) out, the classifier in ``head``), so `tsm train`,
`tsm test`, checkpoints, export and `tsm bench` take them all; `models.factory.FAMILIES`
names them.

- tsn: `VideoRecognizer`, TSN (2D per frame, average consensus) and TSM (with shift);
- single_frame: `SingleFrame`, one frame per clip, the paper's 2D baseline;
- late_fusion, early_fusion, slow_fusion: `LateFusion`, `EarlyFusion`, `SlowFusion`,
  Karpathy et al. (2014)'s fusions on a ResNet trunk (`fusion`);
- c3d: `C3D`, Tran et al.'s 8-convolution 3D network (16 frames of 112x112);
- i3d: `I3D`, the non-local paper's I3D-ResNet-50 (32 or 8 frames), which `inflate`
  fills from 2D ResNet weights;
- eco_lite, eco_full: `EcoLite`, `EcoFull`, ECO (Zolfaghari et al. 2018): 2D maps per
  frame into a 3D ResNet-18, the full model with a 2D branch (`eco`).
"""

from temporal_shift.models.zoo.c3d import C3D
from temporal_shift.models.zoo.eco import EcoFull, EcoLite
from temporal_shift.models.zoo.fusion import EarlyFusion, LateFusion, SlowFusion
from temporal_shift.models.zoo.i3d import I3D
from temporal_shift.models.zoo.single_frame import SingleFrame

__all__ = ["C3D", "I3D", "EarlyFusion", "EcoFull", "EcoLite", "LateFusion", "SingleFrame", "SlowFusion"]
