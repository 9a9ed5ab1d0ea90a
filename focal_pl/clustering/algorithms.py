"""Per-image clustering algorithms behind one signature: unit features N x C -> labels N (-1 = noise).

HDBSCAN is the paper's choice; k-means, bisecting k-means, BIRCH and Ward are the Table VII
ablation. All are scikit-learn's, seeded so that a run is reproducible.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.methods import MST_METHODS, MstMethod  # noqa: F401 - re-exported (the package's API)

Algorithm = Literal["hdbscan", "kmeans", "bisecting_kmeans", "birch", "ward"]
ALGORITHMS: tuple[str, ...] = ("hdbscan", "kmeans", "bisecting_kmeans", "birch", "ward")


def check_min_cluster_size(min_cluster_size: float) -> None:
    """Raise ValueError unless ``min_cluster_size`` is an integer >= 2 or a fraction in (0, 1)."""
    number = isinstance(min_cluster_size, (int, float, np.integer, np.floating)) and not isinstance(
        min_cluster_size, bool)
    if number and (0 < min_cluster_size < 1 or (min_cluster_size >= 2 and float(min_cluster_size).is_integer())):
        return
    raise ValueError(
        f"min_cluster_size must be an integer >= 2 or a fraction in (0, 1), got {min_cluster_size!r}"
    )


def resolve_min_cluster_size(min_cluster_size: float, n: int) -> int:
    """An absolute count (int >= 2) or a fraction of the N features (0 < float < 1)."""
    check_min_cluster_size(min_cluster_size)
    if min_cluster_size < 1:
        return max(2, int(round(min_cluster_size * n)))
    return int(min_cluster_size)


def cluster_labels(
    rows: np.ndarray | Tensor,
    algorithm: Algorithm = "hdbscan",
    min_cluster_size: float = 200,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    seed: int = 0,
    backend: Literal["torch", "sklearn"] = "torch",
    device: str | torch.device | None = None,
    mst: MstMethod = "auto",
) -> np.ndarray:
    """Labels of ``rows`` (N x C float32, L2-normalized; NumPy or torch on any device): -1 noise
    (HDBSCAN only), else 0..k-1, on the host.

    HDBSCAN runs on ``backend="torch"`` by default: the same partition as scikit-learn's public
    class (tested; see ``fast_hdbscan`` for the tie limit), computed on ``device`` (None: where the
    rows are) with the ``mst`` spanning tree; ``"sklearn"`` calls the public class. The other
    algorithms are scikit-learn's, on the host.
    """
    from sklearn import cluster

    n = rows.shape[0]
    if algorithm == "hdbscan":
        size = resolve_min_cluster_size(min_cluster_size, n)
        if n < size or (min_samples or size) > n:
            return np.full(n, -1, dtype=np.int64)
        if backend == "torch":
            try:
                from focal_pl.clustering.fast_hdbscan import hdbscan_labels
            except ImportError as error:  # scikit-learn moved its private tree code
                warnings.warn(f"fast HDBSCAN unavailable ({error}); using scikit-learn's public class",
                              stacklevel=2)
            else:
                return hdbscan_labels(rows, size, min_samples, allow_single_cluster, device=device, mst=mst)
        if backend not in ("torch", "sklearn"):
            raise ValueError(f"backend must be 'torch' or 'sklearn', got {backend!r}")
        model = cluster.HDBSCAN(
            min_cluster_size=size, min_samples=min_samples, allow_single_cluster=allow_single_cluster,
            copy=True,
        )
    elif n < 2:
        return np.zeros(n, dtype=np.int64)
    elif algorithm == "kmeans":
        model = cluster.KMeans(n_clusters=2, n_init=3, random_state=seed)
    elif algorithm == "bisecting_kmeans":
        model = cluster.BisectingKMeans(n_clusters=2, random_state=seed)
    elif algorithm == "birch":
        model = cluster.Birch(n_clusters=2)
    elif algorithm == "ward":
        model = cluster.AgglomerativeClustering(n_clusters=2, linkage="ward")
    else:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return np.asarray(model.fit_predict(_host(rows)), dtype=np.int64)


def _host(rows: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(rows, Tensor):
        return rows.detach().to("cpu", torch.float32).numpy()
    return np.asarray(rows)
