"""Pixel losses: FOCAL's soft contrastive loss, the sampled contrastive losses of the ablation
and the per-pixel cross-entropy of the traditional baseline."""

from focal_pl.losses.base import PixelLoss
from focal_pl.losses.contrastive import (
    CircleLoss,
    DCLLoss,
    InfoNCELoss,
    NCELoss,
    SampledPixelLoss,
    TripletLoss,
)
from focal_pl.losses.classification import PixelBCELoss
from focal_pl.losses.scl import SoftContrastiveLoss, fcm_objective, soft_coefficients

__all__ = [
    "CircleLoss",
    "DCLLoss",
    "InfoNCELoss",
    "NCELoss",
    "PixelBCELoss",
    "PixelLoss",
    "SampledPixelLoss",
    "SoftContrastiveLoss",
    "TripletLoss",
    "fcm_objective",
    "soft_coefficients",
]
