"""Scoring one image: its features clustered, the mask and score brought to the image's size (or
the truth brought to the feature grid), and every per-image number of the evaluation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.clustering import Clusterer, resize_mask
from focal_pl.clustering.image_score import ImageScore, image_score
from focal_pl.losses.pixels import downsample_mask
from focal_pl.metrics import pixel_scores, score_auc

Resolution = Literal["image", "grid"]


@dataclass
class ImageResult:
    """Every per-image number of an evaluation (NaN where it does not apply)."""

    set: str
    degradation: str
    name: str
    truth: bool
    authentic: bool
    f1: float = math.nan
    f1_forged: float = math.nan
    f1_permuted: float = math.nan
    iou: float = math.nan
    pixel_auc: float = math.nan
    image_score: float = math.nan
    forged_share: float = math.nan
    mask_file: str = ""
    score_file: str = ""
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        out = asdict(self)
        out.pop("extra")
        return out


def quantize(score: Tensor) -> Tensor:
    """A [0, 1] score map as uint8 (the saved PNG holds exactly these values)."""
    return score.clamp(0, 1).mul(255).round().to(torch.uint8)


def predicted_maps(
    features: Tensor, clusterer: Clusterer, size: tuple[int, int], splits: list[int] | None = None,
    mask_resize: Literal["nearest", "bilinear"] = "nearest",
    clustered: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(mask at ``size``, uint8 score at ``size``, mask on the grid, score on the grid);
    ``clustered`` passes a (mask, score) already computed on the grid."""
    mask, score = clustered if clustered is not None else clusterer(features, splits)
    full_mask = resize_mask(mask, size, mask_resize)
    full_score = F.interpolate(score[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return full_mask, quantize(full_score), mask, quantize(score)


def score_image(
    features: Tensor,
    truth: Tensor | None,
    size: tuple[int, int],
    clusterer: Clusterer,
    *,
    set_name: str = "",
    degradation: str = "none",
    name: str = "",
    splits: list[int] | None = None,
    resolution: Resolution = "image",
    mask_resize: Literal["nearest", "bilinear"] = "nearest",
    image_method: ImageScore = "heterogeneity",
    clustered: tuple[Tensor, Tensor] | None = None,
) -> tuple[ImageResult, Tensor, Tensor]:
    """Cluster one image and score it; returns (result, mask, uint8 score) at the scoring resolution.

    ``resolution="image"`` (default) scores at the image's own size; ``"grid"`` scores on the feature
    grid against the truth downsampled there (the official code's way, which inflates numbers).
    """
    features = features.detach().float().cpu()
    full_mask, full_score, grid_mask, grid_score = predicted_maps(
        features, clusterer, size, splits, mask_resize, clustered)
    if resolution == "grid":
        mask, score = grid_mask, grid_score
        truth = downsample_mask(truth[None, None].float(), tuple(grid_mask.shape))[0] if truth is not None else None
    else:
        mask, score = full_mask, full_score
    authentic = truth is not None and not bool(truth.any())
    result = ImageResult(set_name, degradation, name, truth is not None, authentic,
                         image_score=image_score(features, grid_mask, image_method),
                         forged_share=float(mask.float().mean()))
    if truth is not None:
        truth = truth.bool()
        scores = pixel_scores(mask, truth)
        for key in ("f1", "f1_forged", "f1_permuted", "iou"):
            setattr(result, key, float(scores[key]))
        result.pixel_auc = score_auc(score, truth)
    return result, mask, score
