"""Shared input handling of the pixel losses: masks to the feature grid, features to unit rows."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from focal_pl.losses.targets import downsample_mask


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
