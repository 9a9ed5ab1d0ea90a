"""The entry points: rows -> HDBSCAN labels, by the spanning tree ``mst`` chooses.

``"auto"`` (default): Prim on the CPU while its N x N bounds fit the budget, Boruvka otherwise; the
tree's labels then come from scikit-learn's own single linkage and cluster selection
(``sklearn_tree``)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.fast_hdbscan.boruvka import CPU_MEMORY_BUDGET, boruvka_tree
from focal_pl.clustering.fast_hdbscan.prim import prim_tree
from focal_pl.clustering.fast_hdbscan.sklearn_tree import labels_from_mst, labels_from_prim_tree
from focal_pl.clustering.methods import MST_METHODS, MstMethod


def resolve_mst(mst: MstMethod, device: str | torch.device, n: int = 0,
                memory_budget: int | None = None) -> Literal["prim", "boruvka"]:
    """``auto``: Prim on the CPU while its 4 N^2 bytes fit ``memory_budget`` (None:
    ``CPU_MEMORY_BUDGET``), Boruvka otherwise and on any other device."""
    if mst not in MST_METHODS:
        raise ValueError(f"mst must be one of {', '.join(MST_METHODS)}, got {mst!r}")
    if mst == "auto":
        budget = CPU_MEMORY_BUDGET if memory_budget is None else memory_budget
        return "prim" if torch.device(device).type == "cpu" and 4 * n * n <= budget else "boruvka"
    return mst


def hdbscan_labels(
    rows: np.ndarray | Tensor,
    min_cluster_size: int,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    device: str | torch.device | None = None,
    mst: MstMethod = "auto",
    memory_budget: int | None = None,
) -> np.ndarray:
    """Labels (-1 = noise) of ``rows`` N x C, equal to ``sklearn.cluster.HDBSCAN(min_cluster_size,
    min_samples, allow_single_cluster=...)`` with the euclidean metric, up to the tie limit (the
    package's docstring; none for Prim).

    ``device``: where Boruvka runs (None: where ``rows`` are; NumPy: the CPU); Prim runs on the host.
    ``mst``: prim, boruvka or auto. ``memory_budget``: bytes (None: half the free memory of a CUDA
    device, ``CPU_MEMORY_BUDGET`` on the CPU) for Boruvka's chunks and auto's choice.
    """
    data = torch.as_tensor(rows)
    if data.dim() != 2:
        raise ValueError(f"rows must be N x C, got shape {tuple(data.shape)}")
    return hdbscan_labels_batch(data[None], min_cluster_size, min_samples, allow_single_cluster,
                                cluster_selection_method, device, mst, memory_budget)[0]


def hdbscan_labels_batch(
    rows: np.ndarray | Tensor,
    min_cluster_size: int,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    device: str | torch.device | None = None,
    mst: MstMethod = "auto",
    memory_budget: int | None = None,
) -> list[np.ndarray]:
    """``hdbscan_labels`` of every map of ``rows`` B x N x C: Prim map by map on the host, or Boruvka
    of all maps on ``device`` in one set of rounds (each map by chunks of rows within
    ``memory_budget``). One int64 label array per map, on the host."""
    data = torch.as_tensor(rows)
    if data.dim() != 3:
        raise ValueError(f"rows must be B x N x C, got shape {tuple(data.shape)}")
    device = data.device if device is None else torch.device(device)
    b, n = data.shape[:2]
    method = resolve_mst(mst, device, n, memory_budget)
    samples = min_cluster_size if min_samples is None else min_samples
    if n < 2 or samples > n or min_cluster_size > n:
        return [np.full(n, -1, dtype=np.int64) for _ in range(b)]
    if min_samples is not None and min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    if method == "prim":
        host = data.detach().cpu().numpy()
        return [labels_from_prim_tree(prim_tree(r, samples), min_cluster_size, allow_single_cluster,
                                      cluster_selection_method) for r in host]
    edges, weights = boruvka_tree(data.to(device), samples, memory_budget=memory_budget)
    edges, weights = edges.cpu().numpy(), weights.cpu().numpy()
    return [labels_from_mst(e, w, n, min_cluster_size, allow_single_cluster, cluster_selection_method, True)
            for e, w in zip(edges, weights)]
