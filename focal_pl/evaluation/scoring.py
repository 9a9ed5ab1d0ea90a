"""The one scoring path of validation, test and predict: a batch's features -> the masker's masks
(one call for the batch, on the features' device) -> masks and scores at the scoring resolution ->
per-image numbers and, in validation, the torchmetrics update.

Device rule: the features stay where the model made them and the masker brings its masks back to
the host (``Masker`` contract); truths and metadata never leave the host
(``FocalModule.transfer_batch_to_device`` moves the model inputs only); the torchmetrics metric
moves what it is given to its own device. Nothing else here changes a tensor's device, except the
one explicit copy of the features that the image-level score needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.clustering.image_score import ImageScore, image_score
from focal_pl.clustering.masker import Masker
from focal_pl.masks import Resize, official_grid_truth, resize_mask
from focal_pl.metrics import ForgeryLocalizationMetrics, pixel_scores, score_auc

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


@dataclass
class Scored:
    """One image after scoring: its numbers, and its mask and uint8 score map at the scoring
    resolution and at the image's own size (what pictures and prediction files show)."""

    result: ImageResult
    mask: Tensor
    score: Tensor
    image_mask: Tensor
    image_score_map: Tensor


def quantize(score: Tensor) -> Tensor:
    """A [0, 1] score map as uint8 (the saved PNG holds exactly these values)."""
    return score.clamp(0, 1).mul(255).round().to(torch.uint8)


def batch_truths(batch: dict[str, Any]) -> list[Tensor | None]:
    """Each image's full-size bool truth, or None for images without one (a user's photos)."""
    n = len(batch["name"])
    if "mask_full" not in batch:
        return [None] * n
    flags = batch.get("truth", [True] * n)
    return [batch["mask_full"][i].bool() if flags[i] else None for i in range(n)]


def member_splits(extractor: Any) -> list[int] | None:
    """The channels of each fused member (``FusedExtractor``), None for a single extractor."""
    return getattr(extractor, "member_channels", None)


def cluster_maps(
    features: Tensor, masker: Masker, splits: list[int] | None = None, image_method: ImageScore | None = None,
) -> tuple[list[tuple[Tensor, Tensor]], Tensor | None]:
    """The device part of scoring: the masker's (mask, score) per map, on the host, and the host
    copy of the features when the image-level score needs them."""
    maps = masker.cluster_batch(features, splits)
    host = features.detach().float().cpu() if image_method == "heterogeneity" else None
    return maps, host


def score_batch(
    features: Tensor | None,
    masker: Masker,
    batch: dict[str, Any],
    *,
    splits: list[int] | None = None,
    resolution: Resolution = "image",
    mask_resize: Resize = "nearest",
    image_method: ImageScore | None = None,
    metrics: ForgeryLocalizationMetrics | None = None,
    set_name: str = "",
    degradation: str = "none",
    maps: list[tuple[Tensor, Tensor]] | None = None,
    host_features: Tensor | None = None,
) -> list[Scored]:
    """Score every image of a batch from its features ``B x C x h x w`` (any device).

    ``resolution="image"`` scores at each image's own size; ``"grid"`` on the feature grid against
    the truth brought there as the official code does (``official_grid_truth``); an image is
    authentic or forged by its full-size truth either way. ``metrics`` (validation) is updated with
    each image's mask and truth; without it the per-image numbers are computed into the results
    (test, predict). ``image_method`` adds the image-level score. ``maps`` / ``host_features`` pass
    what ``cluster_maps`` already computed (predict finishes a batch on the host in the background);
    ``features`` may then be None.
    """
    if maps is None:
        maps, host_features = cluster_maps(features, masker, splits, image_method)
    host = host_features
    truths = batch_truths(batch)
    out = []
    for i, (grid_mask, grid_score) in enumerate(maps):
        size = tuple(int(s) for s in batch["size"][i])
        truth = truths[i]
        image_mask = resize_mask(grid_mask, size, mask_resize)
        image_map = quantize(F.interpolate(grid_score[None, None].float(), size=size, mode="bilinear",
                                           align_corners=False)[0, 0])
        if resolution == "grid":
            mask, score = grid_mask.bool(), quantize(grid_score)
            scored_truth = official_grid_truth(truth, tuple(grid_mask.shape)) if truth is not None else None
        elif resolution == "image":
            mask, score, scored_truth = image_mask, image_map, truth
        else:
            raise ValueError(f"resolution must be 'image' or 'grid', got {resolution!r}")
        result = ImageResult(set_name, degradation, str(batch["name"][i]), truth is not None,
                             truth is not None and not bool(truth.any()),
                             forged_share=float(mask.float().mean()))
        if image_method is not None:
            result.image_score = image_score(host[i] if host is not None else None, grid_mask, image_method)
        if scored_truth is not None:
            if metrics is not None:
                metrics.update(mask, scored_truth)
            else:
                numbers = pixel_scores(mask, scored_truth)
                for key in ("f1", "f1_forged", "f1_permuted", "iou"):
                    setattr(result, key, float(numbers[key]))
                result.pixel_auc = score_auc(score, scored_truth)
        out.append(Scored(result, mask, score, image_mask, image_map))
    return out
