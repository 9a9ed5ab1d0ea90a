"""The one scoring path of validation, test and predict: a batch's features -> the masker's masks
(one call for the batch, on the features' device: ``Scorer.cluster``) -> masks, score maps and
truths at the scoring resolution (``Scorer.score``, on the host) -> per-image numbers where a table
needs them (``Scorer.measure``); validation feeds the masks to its torchmetrics metric instead.

Device rule: the features stay where the model made them and the masker brings its masks back to
the host (``Masker`` contract); truths and metadata never leave the host (``Batch.to_device``
moves the model inputs only); the torchmetrics metric moves what it is given to its own device.
Nothing else here changes a tensor's device, except the one explicit copy of an image's features
that the ``heterogeneity`` image-level score needs.
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
from focal_pl.data.batch import Batch
from focal_pl.evaluation.masks import Resize, official_grid_truth, resize_mask
from focal_pl.evaluation.metrics import pixel_scores, score_auc
from focal_pl.evaluation.protocols import pixel_counts, trufor_scores

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
    f1_best_trufor: float = math.nan
    f1_fixed_trufor: float = math.nan
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
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
    """One image after scoring: its result, and its mask, uint8 score map and truth at the scoring
    resolution (``truth`` None without one), and mask and score map at the image's own size (what
    pictures and prediction files show)."""

    result: ImageResult
    mask: Tensor
    score: Tensor
    truth: Tensor | None
    image_mask: Tensor
    image_score_map: Tensor


@dataclass
class Clustered:
    """What an evaluation step hands to the callbacks: each map's mask and score on the host (the
    masker's output), and the features as the model made them (on its device), for the image-level
    score that needs them (``heterogeneity``)."""

    maps: list[tuple[Tensor, Tensor]]
    features: Tensor | None = None


def quantize(score: Tensor) -> Tensor:
    """A [0, 1] score map as uint8 (the saved PNG holds exactly these values)."""
    return score.clamp(0, 1).mul(255).round().to(torch.uint8)


def batch_truths(batch: Batch) -> list[Tensor | None]:
    """Each image's full-size bool truth, or None for images without one (a user's photos)."""
    if batch.mask_full is None:
        return [None] * len(batch)
    return [batch.mask_full[i].bool() if batch.truth[i] else None for i in range(len(batch))]


def member_splits(extractor: Any) -> list[int] | None:
    """The channels of each fused member (``FusedExtractor``), None for a single extractor."""
    return getattr(extractor, "member_channels", None)


@dataclass
class Scorer:
    """How a model's features become scored masks.

    Args:
        masker: features of one map -> (mask, score): the module's clusterer.
        splits: channels of each fused member (``member_splits``), None for one extractor.
        mask_resize: how the grid mask is brought to the image's size: nearest or bilinear (> 0.5).
        image_method: the image-level score to compute (None: none).
    """

    masker: Masker
    splits: list[int] | None = None
    mask_resize: Resize = "nearest"
    image_method: ImageScore | None = None

    @classmethod
    def of(cls, module: Any, mask_resize: Resize = "nearest", image_method: ImageScore | None = None) -> Scorer:
        """The scorer of a ``FocalModule``: its clusterer and its extractor's member channels."""
        return cls(module.clusterer, member_splits(module.extractor), mask_resize, image_method)

    def cluster(self, features: Tensor) -> Clustered:
        """Features ``B x C x h x w`` (any device) -> each map's mask and score on the host (the
        device part of scoring, one masker call for the batch)."""
        return Clustered(self.masker.cluster_batch(features, self.splits), features.detach())

    def score(self, batch: Batch, clustered: Clustered, resolution: Resolution = "image", set_name: str = "",
              degradation: str = "none") -> list[Scored]:
        """Each image's masks and truth at ``resolution``: ``image`` (its own size) or ``grid`` (the
        feature grid, the truth brought there as the official code does, ``official_grid_truth``).
        An image is authentic or forged by its full-size truth either way."""
        if resolution not in ("image", "grid"):
            raise ValueError(f"resolution must be 'image' or 'grid', got {resolution!r}")
        truths = batch_truths(batch)
        out = []
        for i, (grid_mask, grid_score) in enumerate(clustered.maps):
            size = tuple(int(s) for s in batch.size[i])
            truth = truths[i]
            image_mask = resize_mask(grid_mask, size, self.mask_resize)
            image_map = quantize(F.interpolate(grid_score[None, None].float(), size=size, mode="bilinear",
                                               align_corners=False)[0, 0])
            if resolution == "grid":
                mask, score = grid_mask.bool(), quantize(grid_score)
                scored_truth = official_grid_truth(truth, tuple(grid_mask.shape)) if truth is not None else None
            else:
                mask, score, scored_truth = image_mask, image_map, truth
            result = ImageResult(set_name, degradation, str(batch.name[i]), truth is not None,
                                 truth is not None and not bool(truth.any()), forged_share=float(mask.float().mean()))
            if self.image_method is not None:
                needed = self.image_method == "heterogeneity" and clustered.features is not None
                features = clustered.features[i].float().cpu() if needed else None
                result.image_score = image_score(features, grid_mask, self.image_method)
            out.append(Scored(result, mask, score, scored_truth, image_mask, image_map))
        return out

    @staticmethod
    def measure(item: Scored, peers: bool = True) -> ImageResult:
        """Fill in the image's pixel numbers (F1s, IoU, pixel AUC and, with ``peers``, the peers'
        protocols: ``focal_pl.evaluation.protocols``) against its truth, if it has one."""
        if item.truth is not None:
            numbers = pixel_scores(item.mask, item.truth)
            for key in ("f1", "f1_forged", "f1_permuted", "iou"):
                setattr(item.result, key, float(numbers[key]))
            item.result.pixel_auc = score_auc(item.score, item.truth)
            if peers:
                numbers = pixel_counts(item.mask, item.truth)
                if bool(item.truth.any()):
                    numbers.update(trufor_scores(item.mask, item.score, item.truth))
                for key, value in numbers.items():
                    setattr(item.result, key, value)
        return item.result
