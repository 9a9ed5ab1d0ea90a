"""Per-image clustering algorithms behind one signature: unit features N x C -> labels N (-1 = noise).

HDBSCAN is the paper's choice; k-means, bisecting k-means, BIRCH and Ward are the Table VII
ablation. All are scikit-learn's, seeded so that a run is reproducible.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

Algorithm = Literal["hdbscan", "kmeans", "bisecting_kmeans", "birch", "ward"]
ALGORITHMS: tuple[str, ...] = ("hdbscan", "kmeans", "bisecting_kmeans", "birch", "ward")


def resolve_min_cluster_size(min_cluster_size: float, n: int) -> int:
    """An absolute count (int >= 2) or a fraction of the N features (0 < float < 1)."""
    if 0 < min_cluster_size < 1:
        return max(2, int(round(min_cluster_size * n)))
    if min_cluster_size >= 2 and float(min_cluster_size).is_integer():
        return int(min_cluster_size)
    raise ValueError(
        f"min_cluster_size must be an integer >= 2 or a fraction in (0, 1), got {min_cluster_size}"
    )


def cluster_labels(
    rows: np.ndarray,
    algorithm: Algorithm = "hdbscan",
    min_cluster_size: float = 200,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    seed: int = 0,
    backend: Literal["torch", "sklearn"] = "torch",
    device: str = "cpu",
) -> np.ndarray:
    """Labels of ``rows`` (N x C float32, L2-normalized): -1 noise (HDBSCAN only), else 0..k-1.

    HDBSCAN runs on ``backend="torch"`` by default: the same partition as scikit-learn's public
    class (tested), about 15x faster on 64 x 64 x 256 maps; ``"sklearn"`` calls the public class.
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
                return hdbscan_labels(rows, size, min_samples, allow_single_cluster, device=device)
        if backend != "sklearn":
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
    return np.asarray(model.fit_predict(rows), dtype=np.int64)
