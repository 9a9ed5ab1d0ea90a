"""Masks between resolutions for scoring: a predicted grid mask onto the image, and the truth onto the
feature grid as the official code brings it there (grid scoring). The losses' own grid truth is
``focal_pl.losses.targets.downsample_mask``."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Resize = Literal["nearest", "bilinear"]


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
