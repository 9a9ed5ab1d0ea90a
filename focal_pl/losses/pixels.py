"""Shared input handling of the pixel losses: masks to the feature grid, features to unit rows."""

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


def flatten_pixels(features: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Features ``B x C x h x w`` and masks to float32 unit rows ``B x N x C`` and labels ``B x N``.

    The loss math runs in float32 whatever the input precision (bf16 sums over 65k pixels lose
    too many digits), so callers disable autocast around it.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be B x C x h x w, got shape {tuple(features.shape)}")
    if masks.shape[0] != features.shape[0]:
        raise ValueError(
            f"features hold {features.shape[0]} images but masks hold {masks.shape[0]}"
        )
    b, c, h, w = features.shape
    labels = downsample_mask(masks.to(features.device), (h, w)).reshape(b, h * w)
    f = features.float().permute(0, 2, 3, 1).reshape(b, h * w, c)
    return F.normalize(f, dim=-1), labels


def zero_loss(features: Tensor) -> Tensor:
    """A zero that stays attached to the graph, so DDP sees a gradient for every parameter."""
    return features.sum() * 0.0
