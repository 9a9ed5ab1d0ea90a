"""scikit-learn's own Prim tree, on the host, certified from the float32 bounds.

scikit-learn's Prim (``mst_from_data_matrix``: start at node 0, add the lowest-index node of least
reachability, by an edge from the first tree node that reached it), run on lower bounds
``max(key(core_i^2), key(core_j^2), lower_ij)`` over the N x N float32 ``lower`` on the host (one BLAS
``syrk``, its triangle mirrored: ``bounds._dense_lower_bounds``). A node's least reachability stays a
lower bound of the true one, and the node chosen is certainly Prim's choice, tie rules included, when
its value is exact: the edge that set it is certified, or the node was refined (the tree nodes whose
lower bound does not exceed the least upper bound, the uncertain ones computed exactly, the earliest
of least value kept). Then scikit-learn's ``_process_mst`` (its own ``argsort`` of the weights in
Prim order; ``sklearn_tree``). The tree is scikit-learn's, in its order, weights bit for bit (tested
against its ``mst_from_data_matrix``), hence its partition, ties included. 4 N^2 bytes on the host;
the default on the CPU while they fit the memory budget."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from focal_pl.clustering.fast_hdbscan.arrays import _host_rows
from focal_pl.clustering.fast_hdbscan.bounds import _Bounds, _dense_lower_bounds, _keep_workspace, _thresholds
from focal_pl.clustering.fast_hdbscan.core_distance import _dense_core_squares
from focal_pl.clustering.fast_hdbscan.exact import _exact_numpy, _square_keys
from focal_pl.clustering.fast_hdbscan.sklearn_tree import MST_edge_dtype


def prim_tree(rows: np.ndarray | Tensor, min_samples: int) -> np.ndarray:
    """scikit-learn's Prim tree of ``rows`` N x C (its ``mst_from_data_matrix`` on its core
    distances), bit for bit: the N-1 edges in Prim order (``MST_edge_dtype``: current_node,
    next_node, distance), the order ``_process_mst`` expects. On the host, 4 N^2 bytes (module
    docstring)."""
    x = _host_rows(rows)
    if len(x) < 2:
        return np.empty(0, dtype=MST_edge_dtype)
    xt = np.ascontiguousarray(x.T)
    bounds = _Bounds(x)
    lower = _dense_lower_bounds(bounds)
    try:
        core2 = _dense_core_squares(x, xt, lower, bounds, min_samples)
        mst = _certified_prim(x, xt, lower, core2, bounds)
    finally:
        _keep_workspace(lower)
    np.sqrt(mst["distance"], out=mst["distance"])
    return mst


def _certified_prim(x: np.ndarray, xt: np.ndarray, lower: np.ndarray, core2: np.ndarray,
                    bounds: _Bounds) -> np.ndarray:
    """scikit-learn's Prim on the lower bounds ``max(key(core_i^2), key(core_j^2), lower_ij)`` (module
    docstring); distances in the tree are square keys (``_square_keys``), rooted by the caller.

    Per step, 8 vector operations on N entries: the new tree node's row of lower bounds (``open``
    holds the core keys, infinite for tree nodes, so that their entries never improve), where it
    improves a node's least reachability (strictly: the first tree node to reach a value keeps it),
    and the first node of least value. That value is exact when the edge that set it is certified
    (its bound within the threshold of either end) or when the node was refined since."""
    n = len(core2)
    keys = _square_keys(core2)
    threshold = _thresholds(core2, bounds).tolist()
    reach = np.full(n, np.inf)
    source = np.zeros(n, dtype=np.int64)
    better = np.empty(n, dtype=bool)
    row, own = np.empty(n), np.empty(n)
    open_ = keys.copy()
    key = keys.tolist()
    refined = [-1] * n
    order = np.zeros(n, dtype=np.int64)  # the tree's nodes in Prim order (node 0 first)
    rank = np.full(n, n, dtype=np.int64)  # each node's place in that order (n: not in the tree)
    rank[0] = 0
    sources, weights = [0] * (n - 1), [0.0] * (n - 1)
    maximum, minimum, less, copyto, argmin = np.maximum, np.minimum, np.less, np.copyto, reach.argmin
    node = 0
    for step in range(n - 1):
        open_[node] = np.inf
        copyto(row, lower[node])  # to float64 (a cast copy is faster than a mixed maximum)
        own.fill(key[node])  # and a filled array faster than a scalar operand
        maximum(row, own, out=row)
        maximum(row, open_, out=row)
        less(row, reach, out=better)
        copyto(source, node, where=better)
        minimum(reach, row, out=reach)  # the values where better (faster than a masked copy)
        node = int(argmin())
        first = source.item(node)
        bound = lower.item(first, node)
        while bound > threshold[node] and bound > threshold[first] and refined[node] != first:
            first, reach[node] = _refine(x, xt, lower, keys, core2, bounds.h, rank, node)
            source[node] = refined[node] = first
            node = int(argmin())
            first = source.item(node)
            bound = lower.item(first, node)
        sources[step] = first
        weights[step] = reach.item(node)
        order[step + 1] = node
        rank[node] = step + 1
        reach[node] = np.inf
    mst = np.empty(n - 1, dtype=MST_edge_dtype)
    mst["current_node"], mst["next_node"], mst["distance"] = sources, order[1:], weights
    return mst


def _refine(x, xt, lower, keys, core2, h, rank: np.ndarray, node: int) -> tuple[int, float]:
    """The exact least reachability (a square key) of ``node`` from the tree (``rank``: each node's
    place in Prim order, N outside the tree) and the earliest tree node that reaches it: the tree
    nodes whose lower bound is at most the least upper bound, the uncertain ones computed exactly.
    Whole rows (contiguous) with a mask, rather than gathers of the tree's nodes."""
    outside = rank == len(rank)
    bound = lower[node].astype(np.float64)
    larger = np.maximum(keys, keys[node])
    square = bound + h
    square += h[node]  # at least the squared distance
    upper = np.maximum(larger, square)
    np.putmask(upper, outside, np.inf)
    lowest = np.maximum(larger, bound)
    np.putmask(lowest, outside, np.inf)
    candidates = np.flatnonzero(lowest <= upper.min())
    value = larger[candidates]  # exact where certainly within the larger core distance
    uncertain = np.flatnonzero(square[candidates] > np.maximum(core2[candidates], core2[node]))
    if len(uncertain):
        ends = candidates[uncertain]
        exact = _square_keys(_exact_numpy(x, xt, np.full(len(ends), node), ends))
        value[uncertain] = np.maximum(value[uncertain], exact)
    least = value.min()
    tied = candidates[value == least]
    first = tied[np.argmin(rank[tied])]  # the earliest in Prim order
    return int(first), float(least)
