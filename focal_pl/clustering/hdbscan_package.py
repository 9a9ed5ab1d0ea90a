"""The ``hdbscan`` package (scikit-learn-contrib) behind ``Clusterer(backend="hdbscan")``: its labels
and its soft cluster membership. Imported on first use: only this backend needs the package.

Run exactly (``approx_min_span_tree=False``: its Boruvka on maps of at most 60 channels is otherwise
approximate) and in this process (``core_dist_n_jobs=1``: no joblib worker processes inside a
trainer). On maps without exact ties its partition is scikit-learn's and ours (tested)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def import_hdbscan():
    """The ``hdbscan`` module, or an ImportError saying how to install it."""
    try:
        import hdbscan
    except ImportError as error:
        raise ImportError(f"backend='hdbscan' needs the hdbscan package: pip install hdbscan ({error})") from error
    return hdbscan


def package_labels(
    rows: np.ndarray | Tensor,
    min_cluster_size: int,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    cluster_selection_epsilon: float = 0.0,
    membership: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels N int64, -1 = noise; soft membership N x K float64 or None) of ``rows`` N x C by
    ``hdbscan.HDBSCAN``. ``membership``: fit with ``prediction_data=True`` and return
    ``hdbscan.all_points_membership_vectors`` (column k: the probability that a point belongs to
    cluster k; N x 0 when there is no cluster). A single cluster (``allow_single_cluster``), where that
    function fails, gets ``probabilities_``: each point's strength of membership in it, 0 for noise."""
    hdbscan = import_hdbscan()
    x = rows.detach().to("cpu", torch.float64).numpy() if isinstance(rows, Tensor) else np.asarray(rows, np.float64)
    model = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size, min_samples=min_samples, allow_single_cluster=allow_single_cluster,
        cluster_selection_method=cluster_selection_method, cluster_selection_epsilon=float(cluster_selection_epsilon),
        approx_min_span_tree=False, core_dist_n_jobs=1, prediction_data=membership,
    )
    labels = np.asarray(model.fit_predict(x), dtype=np.int64)
    if not membership:
        return labels, None
    clusters = int(labels.max()) + 1 if labels.size else 0
    if clusters == 0:  # hdbscan returns a flat vector of zeros then
        return labels, np.zeros((len(x), 0))
    if clusters == 1:  # all_points_membership_vectors fails on a single cluster (allow_single_cluster)
        return labels, np.asarray(model.probabilities_, dtype=np.float64)[:, None]
    vectors = np.asarray(hdbscan.all_points_membership_vectors(model), dtype=np.float64).reshape(len(x), -1)
    if vectors.shape[1] != clusters:
        raise RuntimeError(f"hdbscan gave {vectors.shape[1]} membership columns for {clusters} clusters")
    return labels, vectors
