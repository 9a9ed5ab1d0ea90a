"""Per-image clustering algorithms behind one signature: unit features N x C -> labels N (-1 = noise).

HDBSCAN is the paper's choice; k-means, bisecting k-means, BIRCH and Ward are the Table VII
ablation, scikit-learn's, seeded so that a run is reproducible; ``cosine_kmeans`` is what the
official FOCAL code runs (``focal_pl.clustering.cosine_kmeans``).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.methods import MST_METHODS, MstMethod  # noqa: F401 - re-exported (the package's API)

Algorithm = Literal["hdbscan", "kmeans", "bisecting_kmeans", "birch", "ward", "cosine_kmeans"]
ALGORITHMS: tuple[str, ...] = ("hdbscan", "kmeans", "bisecting_kmeans", "birch", "ward", "cosine_kmeans")
Backend = Literal["torch", "sklearn", "hdbscan"]
BACKENDS: tuple[str, ...] = ("torch", "sklearn", "hdbscan")
SelectionMethod = Literal["eom", "leaf"]
SELECTION_METHODS: tuple[str, ...] = ("eom", "leaf")


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


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def check_selection(cluster_selection_method: str, cluster_selection_epsilon: float, backend: str = "hdbscan") -> None:
    """Raise ValueError unless HDBSCAN's selection options are eom / leaf and a finite number >= 0, the
    latter above 0 only on the hdbscan backend: scikit-learn 1.9's epsilon selection (which the torch
    backend shares) raises a TypeError on NumPy 2.x (scikit-learn issue #33219)."""
    if cluster_selection_method not in SELECTION_METHODS:
        raise ValueError(f"cluster_selection_method must be one of {', '.join(SELECTION_METHODS)}, "
                         f"got {cluster_selection_method!r}")
    number = isinstance(cluster_selection_epsilon, (int, float, np.integer, np.floating)) and not isinstance(
        cluster_selection_epsilon, bool)
    if not (number and math.isfinite(cluster_selection_epsilon) and cluster_selection_epsilon >= 0):
        raise ValueError(f"cluster_selection_epsilon must be a finite number >= 0, got {cluster_selection_epsilon!r}")
    if cluster_selection_epsilon > 0 and backend != "hdbscan":
        raise ValueError(f"cluster_selection_epsilon={cluster_selection_epsilon!r} needs backend='hdbscan' "
                         f"(scikit-learn's epsilon selection fails on NumPy 2), got backend={backend!r}")


def too_few_points(n: int, min_cluster_size: int, min_samples: int | None) -> bool:
    """HDBSCAN finds no cluster in fewer points than a cluster or than ``min_samples``: all noise."""
    return n < min_cluster_size or (min_samples or min_cluster_size) > n


def cluster_labels(
    rows: np.ndarray | Tensor,
    algorithm: Algorithm = "hdbscan",
    min_cluster_size: float = 200,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    seed: int = 0,
    backend: Backend = "torch",
    device: str | torch.device | None = None,
    mst: MstMethod = "auto",
    cluster_selection_method: SelectionMethod = "eom",
    cluster_selection_epsilon: float = 0.0,
) -> np.ndarray:
    """Labels of ``rows`` (N x C float32, L2-normalized; NumPy or torch on any device): -1 noise
    (HDBSCAN only), else 0..k-1, on the host.

    HDBSCAN runs on ``backend="torch"`` by default: the same partition as scikit-learn's public
    class (tested; see ``fast_hdbscan`` for the tie limit), computed on ``device`` (None: where the
    rows are) with the ``mst`` spanning tree; ``"sklearn"`` calls the public class, ``"hdbscan"`` the
    ``hdbscan`` package (``hdbscan_package``). ``cluster_selection_method`` (eom / leaf) selects the
    clusters alike on all three; ``cluster_selection_epsilon`` > 0 needs the hdbscan backend
    (``check_selection``). The other algorithms are scikit-learn's, on the host.
    """
    from sklearn import cluster

    n = rows.shape[0]
    if algorithm == "hdbscan":
        check_backend(backend)
        check_selection(cluster_selection_method, cluster_selection_epsilon, backend)
        size = resolve_min_cluster_size(min_cluster_size, n)
        if too_few_points(n, size, min_samples):
            return np.full(n, -1, dtype=np.int64)
        if backend == "hdbscan":
            from focal_pl.clustering.hdbscan_package import package_labels

            return package_labels(rows, size, min_samples, allow_single_cluster, cluster_selection_method,
                                  float(cluster_selection_epsilon))[0]
        if backend == "torch":
            try:
                from focal_pl.clustering.fast_hdbscan import hdbscan_labels
            except ImportError as error:  # scikit-learn moved its private tree code
                warnings.warn(f"fast HDBSCAN unavailable ({error}); using scikit-learn's public class",
                              stacklevel=2)
            else:
                return hdbscan_labels(rows, size, min_samples, allow_single_cluster, cluster_selection_method,
                                      device=device, mst=mst)
        model = cluster.HDBSCAN(
            min_cluster_size=size, min_samples=min_samples, allow_single_cluster=allow_single_cluster,
            cluster_selection_method=cluster_selection_method, copy=True,
        )
    elif n < 2:
        return np.zeros(n, dtype=np.int64)
    elif algorithm == "cosine_kmeans":  # the official code's clustering, on the rows' device
        from focal_pl.clustering.cosine_kmeans import cosine_kmeans

        data = torch.as_tensor(rows)
        data = data.to(device) if device is not None else data
        return cosine_kmeans(data).cpu().numpy().astype(np.int64)
    elif algorithm == "kmeans":
        model = cluster.KMeans(n_clusters=2, random_state=seed)  # 2 clusters, the rest at its defaults, as the paper
    elif algorithm == "bisecting_kmeans":
        model = cluster.BisectingKMeans(n_clusters=2, random_state=seed)
    elif algorithm == "birch":
        model = cluster.Birch(n_clusters=2)
    elif algorithm == "ward":
        model = cluster.AgglomerativeClustering(n_clusters=2, linkage="ward")
    else:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return np.asarray(model.fit_predict(_host(rows)), dtype=np.int64)


def soft_hdbscan(
    rows: np.ndarray | Tensor,
    min_cluster_size: float = 200,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: SelectionMethod = "eom",
    cluster_selection_epsilon: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels (as ``cluster_labels`` with ``backend="hdbscan"``) and the ``hdbscan``
    package's soft cluster membership, N x K (column k: cluster k; N x 0 when there is no cluster)."""
    from focal_pl.clustering.hdbscan_package import package_labels

    check_selection(cluster_selection_method, cluster_selection_epsilon)
    n = rows.shape[0]
    size = resolve_min_cluster_size(min_cluster_size, n)
    if too_few_points(n, size, min_samples):
        return np.full(n, -1, dtype=np.int64), np.zeros((n, 0))
    return package_labels(rows, size, min_samples, allow_single_cluster, cluster_selection_method,
                          float(cluster_selection_epsilon), membership=True)


def _host(rows: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(rows, Tensor):
        return rows.detach().to("cpu", torch.float32).numpy()
    return np.asarray(rows)
