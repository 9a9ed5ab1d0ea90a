"""The truth on the feature grid: what every pixel loss compares its features with."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def downsample_mask(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Masks ``B x 1 x H x W`` (or ``B x H x W``) in [0, 1] to bool ``B x h x w`` (forged share > 0.5).

    Area averaging then a 0.5 threshold: a feature is forged when most of the pixels it covers are.
    """
    if masks.dim() == 3:
        masks = masks[:, None]
    if masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must be B x 1 x H x W, got shape {tuple(masks.shape)}")
    masks = masks.float()
    if masks.numel() and (masks.min() < 0 or masks.max() > 1):
        raise ValueError(
            f"masks must hold values in [0, 1] (1 = forged), got range "
            f"[{masks.min().item():g}, {masks.max().item():g}]; divide 0/255 masks by 255"
        )
    if tuple(masks.shape[-2:]) != tuple(size):
        masks = F.interpolate(masks, size=size, mode="area")
    return masks[:, 0] > 0.5
