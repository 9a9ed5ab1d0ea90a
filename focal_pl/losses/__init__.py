"""Pixel losses: FOCAL's soft contrastive loss and the sampled contrastive losses of the ablation."""

from focal_pl.losses.contrastive import (
    CircleLoss,
    DCLLoss,
    InfoNCELoss,
    SampledPixelLoss,
    TripletLoss,
)
from focal_pl.losses.pixels import downsample_mask
from focal_pl.losses.scl import SoftContrastiveLoss, fcm_objective, soft_coefficients

__all__ = [
    "CircleLoss",
    "DCLLoss",
    "InfoNCELoss",
    "SampledPixelLoss",
    "SoftContrastiveLoss",
    "TripletLoss",
    "downsample_mask",
    "fcm_objective",
    "soft_coefficients",
]
