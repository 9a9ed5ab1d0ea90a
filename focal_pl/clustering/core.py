"""Per-image clustering: a feature map C x h x w -> forged mask h x w + score h x w. Nothing trained."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.clustering.algorithms import (
    ALGORITHMS,
    Algorithm,
    Backend,
    SelectionMethod,
    check_backend,
    check_min_cluster_size,
    check_selection,
    cluster_labels,
    resolve_min_cluster_size,
    soft_hdbscan,
)
from focal_pl.clustering.hdbscan_package import import_hdbscan
from focal_pl.clustering.labelling import (
    NOISE_RULES,
    NoiseRule,
    forged_from_labels,
    membership_score,
    pristine_distance_score,
)
from focal_pl.clustering.masker import Masker
from focal_pl.clustering.methods import MST_METHODS, MstMethod


def unit_rows(features: Tensor | np.ndarray) -> Tensor:
    """(B x) C x h x w features (torch on any device, or NumPy) -> float32 unit rows (B x) (h*w) x C,
    on the features' device."""
    features = torch.as_tensor(features)
    if features.dim() not in (3, 4):
        raise ValueError(f"features must be C x h x w (or B x C x h x w), got shape {tuple(features.shape)}")
    rows = features.detach().float().flatten(-2).transpose(-1, -2)
    return F.normalize(rows, dim=-1)


def feature_rows(features: Tensor | np.ndarray) -> np.ndarray:
    """C x h x w features (torch or NumPy, any device / dtype) -> float32 unit rows (h*w) x C, NumPy."""
    if torch.as_tensor(features).dim() != 3:
        raise ValueError(f"features must be C x h x w, got shape {tuple(features.shape)}")
    return unit_rows(features).cpu().numpy()


class Clusterer(Masker):
    """How each image's features become a mask: the algorithm and its labelling rule.

    The one place where features move to the compute device and results come back: ``__call__``
    and ``cluster_batch`` take features on any device and return masks and scores on the CPU.

    Args:
        algorithm: hdbscan (the paper's), kmeans, bisecting_kmeans, birch, ward, or cosine_kmeans (what
            the official code runs: 2 clusters by cosine similarity, 8 restarts).
        min_cluster_size: HDBSCAN's, an int >= 2 (the paper: 200) or a fraction in (0, 1) of the
            points clustered (after pooling).
        min_samples: HDBSCAN's (None = min_cluster_size, as scikit-learn does), an int >= 1.
        noise: what HDBSCAN's noise points become: nearest (cluster center, cosine), forged, pristine.
        allow_single_cluster: let HDBSCAN return one cluster (an all-pristine answer).
        seed: seed of the k-means family.
        grid: cluster on a grid of at most this side (feature maps above it are average-pooled, on
            the features' device), e.g. 128 for HRNet's 256 x 256 maps; None: no cap on the side.
            The mask then has the pooled grid's size (callers resize it to the image).
        max_points: cluster at most this many points: a map with more (after ``grid``) is
            average-pooled, on the features' device, to the largest grid within both caps, aspect
            kept (to a cell). The default, 16384, is 128 x 128: exact HDBSCAN's N^2 work and memory
            stay bounded (a 256 x 256 map, 65536 points, takes minutes on a CPU; see
            ``fast_hdbscan``). ``grid`` caps the side, ``max_points`` the count; None disables it.
        backend: HDBSCAN's implementation: torch (exact and fastest: scikit-learn's own distances
            where float32 bounds cannot decide, its own tree code; see ``fast_hdbscan``), sklearn (its
            public class: the reference) or hdbscan (the scikit-learn-contrib package: ``pip install
            hdbscan``; needed for ``score: membership``).
        device: where the torch backend and the labelling rule compute: auto (where the features
            are), or a torch device such as cpu, cuda, cuda:1 (the features are moved there).
        fusion: for a ``FusedExtractor``'s features: ``features`` clusters the concatenation (the
            paper's feature-level fusion); ``union`` / ``intersection`` cluster each member alone
            and combine the masks (the naive result-level fusion it is compared with).
        mst: HDBSCAN's spanning tree (torch backend): auto (Prim on the CPU while its N x N bounds
            fit the memory budget, Boruvka by chunks of rows elsewhere), prim or boruvka.
        cluster_selection_method: HDBSCAN's cluster selection, every backend: eom (excess of mass,
            the default: the most stable clusters) or leaf (the leaves of the condensed tree: more,
            smaller, more homogeneous clusters).
        cluster_selection_epsilon: HDBSCAN's (backend hdbscan only: scikit-learn's, which the torch
            backend shares, fails on NumPy 2): a distance (a float >= 0; unit features, so at most
            2): clusters that split below it are merged back into their parent; 0 (the default)
            merges none.
        score: the per-pixel score map: distance (cosine distance to the pristine cluster's center,
            scaled to [0, 1] within the image) or membership (1 - the ``hdbscan`` package's soft
            membership in the pristine cluster, renormalised over the clusters: in [0, 1], 0 where
            no cluster is found; needs backend hdbscan; ``labelling.membership_score``).
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
        max_points: int | None = 16384,
        backend: Backend = "torch",
        device: str = "auto",
        fusion: Literal["features", "union", "intersection"] = "features",
        mst: MstMethod = "auto",
        cluster_selection_method: SelectionMethod = "eom",
        cluster_selection_epsilon: float = 0.0,
        score: Literal["distance", "membership"] = "distance",
    ) -> None:
        if fusion not in ("features", "union", "intersection"):
            raise ValueError(f"fusion must be features, union or intersection, got {fusion!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        check_backend(backend)
        if noise not in NOISE_RULES:
            raise ValueError(f"noise must be 'nearest', 'forged' or 'pristine', got {noise!r}")
        if mst not in MST_METHODS:
            raise ValueError(f"mst must be one of {', '.join(MST_METHODS)}, got {mst!r}")
        check_min_cluster_size(min_cluster_size)
        check_selection(cluster_selection_method, cluster_selection_epsilon, backend)
        if min_samples is not None and not (_is_int(min_samples) and min_samples >= 1):
            raise ValueError(f"min_samples must be None or an integer >= 1, got {min_samples!r}")
        if grid is not None and not (_is_int(grid) and grid >= 1):
            raise ValueError(f"grid must be None or an integer >= 1, got {grid!r}")
        if max_points is not None and not (_is_int(max_points) and max_points >= 1):
            raise ValueError(f"max_points must be None or an integer >= 1, got {max_points!r}")
        if score not in ("distance", "membership"):
            raise ValueError(f"score must be distance or membership, got {score!r}")
        if score == "membership" and (algorithm != "hdbscan" or backend != "hdbscan"):
            raise ValueError(f"score='membership' needs algorithm='hdbscan' and backend='hdbscan' (its soft "
                             f"membership), got algorithm={algorithm!r}, backend={backend!r}")
        if not _is_int(seed):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if backend == "hdbscan" and algorithm == "hdbscan":
            import_hdbscan()  # a missing package is said when the config is read, not mid-run
        if device != "auto":
            try:
                torch.device(device)
            except (RuntimeError, TypeError, ValueError) as error:
                raise ValueError(f"device must be 'auto' or a torch device (cpu, cuda, cuda:1), got {device!r}") \
                    from error
        self.algorithm = algorithm
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.noise = noise
        self.allow_single_cluster = bool(allow_single_cluster)
        self.seed = seed
        self.grid = grid
        self.max_points = max_points
        self.backend = backend
        self.device = device
        self.fusion = fusion
        self.mst = mst
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = float(cluster_selection_epsilon)
        self.score = score

    def __repr__(self) -> str:
        hidden = ("seed", "device", "mst")  # how and where, not what: the same partition
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in hidden)
        return f"Clusterer({settings})"

    def compute_device(self, features: Tensor | np.ndarray) -> torch.device:
        """Where ``features`` are clustered: ``device``, or with ``auto`` where they are."""
        if self.device != "auto":
            return torch.device(self.device)
        return features.device if isinstance(features, Tensor) else torch.device("cpu")

    def __call__(
        self, features: Tensor | np.ndarray, splits: list[int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Features C x h x w (any device, or NumPy) -> (forged mask bool h x w, score float32 h x w
        in [0, 1]), both on the CPU. ``splits``: the channels of each fused member
        (``FusedExtractor.member_channels``)."""
        features = torch.as_tensor(features)
        if features.dim() != 3:
            raise ValueError(f"features must be C x h x w, got shape {tuple(features.shape)}")
        features = features.detach().to(self.compute_device(features))
        if self._split(splits):
            parts = [self._one(part) for part in features.split(splits, dim=0)]
            mask, score = self._fuse(parts)
        else:
            mask, score = self._one(features)
        return mask.cpu(), score.cpu()

    def cluster_batch(
        self, features: Tensor | np.ndarray, splits: list[int] | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """One (mask, score) per map of ``features`` B x C x h x w, on the CPU. HDBSCAN on the torch
        backend runs Boruvka's rounds for all maps at once (each map by chunks of rows within a
        memory budget) or Prim map by map on the host; the other algorithms cluster map by map."""
        features = torch.as_tensor(features)
        if features.dim() != 4:
            raise ValueError(f"features must be B x C x h x w, got shape {tuple(features.shape)}")
        if self.algorithm != "hdbscan" or self.backend != "torch" or len(features) == 0:
            return super().cluster_batch(features, splits)
        try:
            from focal_pl.clustering.fast_hdbscan import hdbscan_labels_batch
        except ImportError:  # scikit-learn moved its private tree code: cluster_labels warns, map by map
            return super().cluster_batch(features, splits)
        features = pool_to_grid(features.detach().to(self.compute_device(features)), self.grid, self.max_points)
        h, w = features.shape[-2:]
        members = features.split(splits, dim=1) if self._split(splits) else [features]
        per_member = []
        for member in members:
            rows = unit_rows(member)
            size = resolve_min_cluster_size(self.min_cluster_size, h * w)
            labels = hdbscan_labels_batch(rows, size, self.min_samples, self.allow_single_cluster,
                                          self.cluster_selection_method, mst=self.mst)
            per_member.append([self._label(r, lab, h, w) for r, lab in zip(rows, labels)])
        out = []
        for parts in zip(*per_member):
            mask, score = self._fuse(list(parts)) if len(parts) > 1 else parts[0]
            out.append((mask.cpu(), score.cpu()))
        return out

    def _split(self, splits: list[int] | None) -> bool:
        return self.fusion != "features" and bool(splits) and len(splits) > 1

    def _fuse(self, parts: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        masks = torch.stack([m for m, _ in parts])
        mask = masks.any(0) if self.fusion == "union" else masks.all(0)
        return mask, torch.stack([s for _, s in parts]).mean(0)

    def _one(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """One map C x h x w on the compute device -> (mask, score) on that device."""
        features = pool_to_grid(features, self.grid, self.max_points)
        h, w = features.shape[-2:]
        rows = unit_rows(features)
        selection = dict(cluster_selection_method=self.cluster_selection_method,
                         cluster_selection_epsilon=self.cluster_selection_epsilon)
        if self.score == "membership":
            labels, membership = soft_hdbscan(rows, self.min_cluster_size, self.min_samples,
                                              self.allow_single_cluster, **selection)
            return self._label(rows, labels, h, w, membership)
        labels = cluster_labels(
            rows, self.algorithm, self.min_cluster_size, self.min_samples,
            self.allow_single_cluster, self.seed, self.backend, rows.device, self.mst, **selection,
        )
        return self._label(rows, labels, h, w)

    def _label(self, rows: Tensor, labels: np.ndarray, h: int, w: int,
               membership: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """The labelling rule (every backend's): the mask from the labels, and the score from the
        pristine center or, given ``membership`` (N x K), from the soft membership."""
        forged, center = forged_from_labels(rows, labels, self.noise)
        if membership is None:
            score = pristine_distance_score(rows, center)
        else:
            score = membership_score(membership, labels, rows.device)
        return forged.view(h, w), score.view(h, w).float()


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def pooled_size(h: int, w: int, grid: int | None = None, max_points: int | None = None) -> tuple[int, int]:
    """The grid an h x w map is clustered on: its longer side at most ``grid`` (each side scaled and
    rounded), then at most ``max_points`` cells (each side scaled by ``sqrt(max_points / cells)``, the
    shorter one rounded down, the longer one given what the count leaves, up to its own size); the
    map's own size where it meets both caps (None: no cap)."""
    if grid is not None and max(h, w) > grid:
        scale = grid / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    if max_points is not None and h * w > max_points:
        scale = math.sqrt(max_points / (h * w))
        if h <= w:
            h = max(1, min(h, math.floor(h * scale)))
            w = max(1, min(w, max_points // h))
        else:
            w = max(1, min(w, math.floor(w * scale)))
            h = max(1, min(h, max_points // w))
    return h, w


def pool_to_grid(features: Tensor | np.ndarray, grid: int | None,
                 max_points: int | None = None) -> Tensor | np.ndarray:
    """Average-pool a (B x) C x h x w map to ``pooled_size`` (its longer side at most ``grid``, at
    most ``max_points`` cells, aspect kept), in one pooling, on the features' device; the map itself
    where it meets both caps."""
    h, w = features.shape[-2:]
    size = pooled_size(h, w, grid, max_points)
    if size == (h, w):
        return features
    features = torch.as_tensor(features)
    batched = features.detach().float()
    pooled = F.adaptive_avg_pool2d(batched if batched.dim() == 4 else batched[None], size)
    return pooled if batched.dim() == 4 else pooled[0]


def cluster_mask(
    features: Tensor | np.ndarray,
    algorithm: Algorithm = "hdbscan",
    min_cluster_size: float = 200,
    min_samples: int | None = None,
    noise: NoiseRule = "nearest",
    allow_single_cluster: bool = False,
    seed: int = 0,
    grid: int | None = None,
    max_points: int | None = 16384,
) -> tuple[Tensor, Tensor]:
    """One image's features C x h x w -> (forged mask bool h x w, score h x w); see ``Clusterer``."""
    return Clusterer(
        algorithm, min_cluster_size, min_samples, noise, allow_single_cluster, seed, grid=grid, max_points=max_points
    )(features)

