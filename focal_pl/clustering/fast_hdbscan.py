"""Exact HDBSCAN, fast: the dense work in torch, the tree work in scikit-learn's own code.

HDBSCAN is core distances (the ``min_samples``-th smallest distance, the point itself included)
-> mutual reachability ``max(core_i, core_j, d_ij)`` -> minimum spanning tree -> single linkage ->
condensed tree -> clusters. scikit-learn's public ``HDBSCAN`` on 256-d features builds a KD-tree
that does not prune in 256 dimensions and computes every distance in scalar Cython (6-7 s per
64 x 64 map on 2 cores). Here the distances come from one matrix product (BLAS, or a GPU), and the
spanning tree, single linkage and cluster selection are scikit-learn's own routines, so the
partition is scikit-learn's (a test compares labels, noise included, with the public class).
Those routines are private: ``pyproject.toml`` pins scikit-learn below the next minor release.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster._hdbscan._linkage import mst_from_mutual_reachability
from sklearn.cluster._hdbscan._tree import tree_to_labels
from sklearn.cluster._hdbscan.hdbscan import _process_mst
from torch import Tensor


def squared_distances(rows: Tensor) -> Tensor:
    """Squared euclidean distances N x N through ``|x|^2 + |y|^2 - 2 x.y`` (one matrix product,
    then in-place updates: the N x N buffer is the only large allocation)."""
    squared = (rows * rows).sum(1)
    d2 = (rows @ rows.T).mul_(-2.0).add_(squared[:, None]).add_(squared[None, :]).clamp_min_(0.0)
    return d2.fill_diagonal_(0.0)


def mutual_reachability(rows: Tensor, min_samples: int) -> Tensor:
    """``max(core_i, core_j, d_ij)`` for N x C ``rows`` (any device); core = the min_samples-th
    smallest distance of each point, itself included (scikit-learn's convention). Everything is
    done on squared distances (the square root is monotone) and rooted once at the end."""
    d2 = squared_distances(rows)
    core2 = d2.topk(min_samples, dim=1, largest=False).values[:, -1]
    torch.maximum(d2, core2[:, None], out=d2)
    torch.maximum(d2, core2[None, :], out=d2)
    return d2.sqrt_()


def hdbscan_labels(
    rows: np.ndarray | Tensor,
    min_cluster_size: int,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """Labels (-1 = noise) of ``rows`` N x C, equal to ``sklearn.cluster.HDBSCAN(min_cluster_size,
    min_samples, allow_single_cluster=...)`` with the euclidean metric.

    ``dtype=torch.float64`` (default) matches scikit-learn's double-precision distances; float32 is
    faster (and what a GPU wants) but near-ties may then be ordered differently.
    """
    data = torch.as_tensor(rows).to(device=device, dtype=dtype)
    n = data.shape[0]
    samples = min_cluster_size if min_samples is None else min_samples
    if n < 2 or samples > n or min_cluster_size > n:
        return np.full(n, -1, dtype=np.int64)
    reach = mutual_reachability(data, samples)
    reach = np.ascontiguousarray(reach.to("cpu", torch.float64).numpy())
    tree = _process_mst(mst_from_mutual_reachability(reach))
    labels, _ = tree_to_labels(tree, min_cluster_size, cluster_selection_method, allow_single_cluster, 0.0, None)
    return np.asarray(labels, dtype=np.int64)
