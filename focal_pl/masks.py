"""Masks between resolutions: the truth onto a feature grid (losses, grid scoring) and a predicted
grid mask onto the image (evaluation). Neutral ground: losses, clustering and evaluation use it."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Resize = Literal["nearest", "bilinear"]


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


def resize_mask(mask: Tensor, size: tuple[int, int], mode: Resize = "nearest") -> Tensor:
    """A bool mask h x w to ``size``: nearest, or bilinear then > 0.5 (the official code's way)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.bool()
    m = mask.float()[None, None]
    if mode == "nearest":
        return F.interpolate(m, size=size, mode="nearest")[0, 0].bool()
    if mode == "bilinear":
        return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0] > 0.5
    raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")


def official_grid_truth(truth: Tensor, size: tuple[int, int]) -> Tensor:
    """The truth on the feature grid exactly as the official FOCAL code makes it: the 0/255 mask
    resized by OpenCV's bilinear ``cv2.resize`` from the image's own size to the grid, then
    ``> 127`` (its ``thresholding``). Used by ``testing.resolution: grid`` so that numbers compare
    with the paper's tables."""
    import cv2

    full = truth.detach().cpu().numpy().astype(np.uint8) * 255
    if full.shape != tuple(size):
        full = cv2.resize(full, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(full > 127)
