"""Per-image clustering: a feature map C x h x w -> forged mask h x w + score h x w. Nothing trained."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.clustering.algorithms import ALGORITHMS, Algorithm, cluster_labels
from focal_pl.clustering.labelling import NoiseRule, forged_from_labels, pristine_distance_score
from focal_pl.clustering.masker import Masker


def feature_rows(features: Tensor | np.ndarray) -> np.ndarray:
    """C x h x w features (torch or NumPy, any device / dtype) -> float32 unit rows (h*w) x C."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if features.dim() != 3:
        raise ValueError(f"features must be C x h x w, got shape {tuple(features.shape)}")
    rows = features.detach().float().cpu().flatten(1).T
    return F.normalize(rows, dim=1).numpy()


class Clusterer(Masker):
    """How each image's features become a mask: the algorithm and its labelling rule.

    Args:
        algorithm: hdbscan (the paper's), kmeans, bisecting_kmeans, birch or ward.
        min_cluster_size: HDBSCAN's, an int (the paper: 200) or a fraction of the h*w features.
        min_samples: HDBSCAN's (None = min_cluster_size, as scikit-learn does).
        noise: what HDBSCAN's noise points become: nearest (cluster center, cosine), forged, pristine.
        allow_single_cluster: let HDBSCAN return one cluster (an all-pristine answer).
        seed: seed of the k-means family.
        grid: cluster on a grid of at most this side (feature maps above it are average-pooled),
            e.g. 64 for HRNet's 256 x 256 maps, whose 65536 points exact HDBSCAN cannot take;
            None clusters the map as it is. The mask then has the pooled grid's size.
        backend: HDBSCAN's implementation: torch (exact, fast: dense distances by matrix product,
            scikit-learn's own tree code) or sklearn (the public class).
        device: where the torch backend computes distances (cpu, cuda).
        fusion: for a ``FusedExtractor``'s features: ``features`` clusters the concatenation (the
            paper's feature-level fusion); ``union`` / ``intersection`` cluster each member alone
            and combine the masks (the naive result-level fusion it is compared with).
    """

    def __init__(
        self,
        algorithm: Algorithm = "hdbscan",
        min_cluster_size: float = 200,
        min_samples: int | None = None,
        noise: NoiseRule = "nearest",
        allow_single_cluster: bool = False,
        seed: int = 0,
        grid: int | None = None,
        backend: Literal["torch", "sklearn"] = "torch",
        device: str = "cpu",
        fusion: Literal["features", "union", "intersection"] = "features",
    ) -> None:
        if fusion not in ("features", "union", "intersection"):
            raise ValueError(f"fusion must be features, union or intersection, got {fusion!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if backend not in ("torch", "sklearn"):
            raise ValueError(f"backend must be 'torch' or 'sklearn', got {backend!r}")
        if noise not in ("nearest", "forged", "pristine"):
            raise ValueError(f"noise must be 'nearest', 'forged' or 'pristine', got {noise!r}")
        self.algorithm = algorithm
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.noise = noise
        self.allow_single_cluster = allow_single_cluster
        self.seed = seed
        self.grid = grid
        self.backend = backend
        self.device = device
        self.fusion = fusion

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("seed", "device"))
        return f"Clusterer({settings})"

    def __call__(
        self, features: Tensor | np.ndarray, splits: list[int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Features C x h x w -> (forged mask bool h x w, score float h x w in [0, 1]) on the CPU.
        ``splits``: the channels of each fused member (``FusedExtractor.member_channels``)."""
        if self.fusion != "features" and splits and len(splits) > 1:
            parts = [self._one(part) for part in torch.as_tensor(features).split(splits, dim=0)]
            masks = torch.stack([m for m, _ in parts])
            mask = masks.any(0) if self.fusion == "union" else masks.all(0)
            return mask, torch.stack([s for _, s in parts]).mean(0)
        return self._one(features)

    def _one(self, features: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
        features = pool_to_grid(features, self.grid)
        h, w = features.shape[-2:]
        rows = feature_rows(features)
        labels = cluster_labels(
            rows, self.algorithm, self.min_cluster_size, self.min_samples,
            self.allow_single_cluster, self.seed, self.backend, self.device,
        )
        forged, center = forged_from_labels(rows, labels, self.noise)
        score = pristine_distance_score(rows, center)
        return (
            torch.from_numpy(forged.reshape(h, w)),
            torch.from_numpy(score.reshape(h, w).astype(np.float32)),
        )


def pool_to_grid(features: Tensor | np.ndarray, grid: int | None) -> Tensor | np.ndarray:
    """Average-pool a C x h x w map so that its longer side is at most ``grid`` (aspect kept)."""
    h, w = features.shape[-2:]
    if grid is None or max(h, w) <= grid:
        return features
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    scale = grid / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.adaptive_avg_pool2d(features.detach().float()[None], size)[0]


def cluster_mask(
    features: Tensor | np.ndarray,
    algorithm: Algorithm = "hdbscan",
    min_cluster_size: float = 200,
    min_samples: int | None = None,
    noise: NoiseRule = "nearest",
    allow_single_cluster: bool = False,
    seed: int = 0,
    grid: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One image's features C x h x w -> (forged mask bool h x w, score h x w); see ``Clusterer``."""
    return Clusterer(
        algorithm, min_cluster_size, min_samples, noise, allow_single_cluster, seed, grid
    )(features)


def resize_mask(
    mask: Tensor, size: tuple[int, int], mode: Literal["nearest", "bilinear"] = "nearest"
) -> Tensor:
    """A bool mask h x w to ``size``: nearest, or bilinear then > 0.5 (the official code's way)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.bool()
    m = mask.float()[None, None]
    if mode == "nearest":
        return F.interpolate(m, size=size, mode="nearest")[0, 0].bool()
    if mode == "bilinear":
        return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0] > 0.5
    raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
