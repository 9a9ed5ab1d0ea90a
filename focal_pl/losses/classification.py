"""Per-pixel cross-entropy: the loss of the traditional baseline (paper Table V), not FOCAL's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.losses.base import PixelLoss

from focal_pl.losses.targets import downsample_mask


class PixelBCELoss(PixelLoss):
    """Binary cross-entropy of one-channel logits ``B x 1 x h x w`` against the masks on their grid.

    Args:
        pos_weight: weight of the forged class (forged pixels are rare; None weighs both alike).
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        if pos_weight is not None and pos_weight <= 0:
            raise ValueError(f"pos_weight must be positive, got {pos_weight}")
        self.pos_weight = pos_weight

    def forward(self, logits: Tensor, masks: Tensor) -> Tensor:
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError(f"logits must be B x 1 x h x w, got shape {tuple(logits.shape)}")
        labels = downsample_mask(masks.to(logits.device), tuple(logits.shape[-2:])).float()
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        with torch.autocast(logits.device.type, enabled=False):
            return F.binary_cross_entropy_with_logits(logits[:, 0].float(), labels, pos_weight=weight)
