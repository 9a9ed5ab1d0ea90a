"""scikit-learn's core distances (the ``min_samples``-th smallest distance, the point itself
included), bit for bit, with few exact distances.

- Core distance of i: the k-th smallest ``lower`` of its row gives a band of candidates (the point
  itself included); those certainly below are counted, the others computed exactly, and the k-th
  smallest exact value taken: scikit-learn's ``kneighbors`` distance, bit for bit.
- A pair certainly within the larger core distance of its ends (``lower_ij + h_i + h_j <=
  max(core_i, core_j)^2``) has mutual reachability ``max(core_i, core_j)`` exactly, with no distance
  (``bounds._thresholds``; the trees use it).

On the host from the N x N bounds (``_dense_core_squares``, Prim's path), or in torch by chunks of
rows on any device (``_chunked_core_squares``, Boruvka's)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.fast_hdbscan.arrays import _host_rows, _nonzero, _spans, _threads
from focal_pl.clustering.fast_hdbscan.bounds import (
    _Bounds,
    _dense_lower_bounds,
    _down,
    _keep_workspace,
    _lower_rows,
    _round_down,
    _round_up,
    _up,
)
from focal_pl.clustering.fast_hdbscan.exact import _exact_numpy, _exact_torch, _sqrt64


def core_distances(rows: np.ndarray | Tensor, min_samples: int, rows_per_chunk: int | None = None
                   ) -> np.ndarray | Tensor:
    """scikit-learn's core distances of ``rows`` N x C (the ``min_samples``-th smallest distance, the
    point itself included), float64, bit for bit. NumPy rows: on the host, through the N x N bounds;
    torch rows: on their device, by chunks of rows (all at once unless ``rows_per_chunk``)."""
    if isinstance(rows, Tensor):
        return _sqrt64(_chunked_core_squares(rows, _Bounds(rows), min_samples, rows_per_chunk or len(rows)))
    x = _host_rows(rows)
    bounds = _Bounds(x)
    lower = _dense_lower_bounds(bounds)
    try:
        return np.sqrt(_dense_core_squares(x, np.ascontiguousarray(x.T), lower, bounds, min_samples))
    finally:
        _keep_workspace(lower)


def _dense_core_squares(x: np.ndarray, xt: np.ndarray, lower: np.ndarray, bounds: _Bounds, k: int,
                        block: int = 64) -> np.ndarray:
    """Squared core distances (scikit-learn's sums) from the N x N lower bounds, by blocks of rows
    that stay in cache, on the CPU's threads: the k-th smallest bound of each row, the entries
    certainly below it counted, the band of those that may be the k-th computed exactly (module
    docstring). The band is first taken for the widest bound of the row (``h_max``), then narrowed
    with each pair's own: below, ``lower + h_i + h_j`` under the k-th bound; above, ``lower`` over the
    k-th smallest upper bound (at most the largest upper bound among the entries not above the k-th
    bound)."""
    n = len(lower)
    h, h_max = bounds.h, bounds.h_max
    below = np.empty(n, dtype=np.int64)
    q = np.empty(n)

    def rows_band(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        firsts, seconds = [], []
        for start in range(span[0], span[1], block):
            stop = min(span[1], start + block)
            rows = lower[start:stop]
            part = np.partition(rows, k - 1, axis=1)
            kth = part[:, k - 1].astype(np.float64)
            q[start:stop] = kth
            low = _down(kth - h[start:stop] - h_max, rows.dtype)  # below this: certainly below the k-th
            high = _up(kth + h[start:stop] + h_max, rows.dtype)  # the k-th is at most this
            below[start:stop] = np.count_nonzero(part[:, : k - 1] < low[:, None], axis=1)
            first, second = _nonzero((rows >= low[:, None]) & (rows <= high[:, None]))
            firsts.append(first + start)
            seconds.append(second)
        return np.concatenate(firsts), np.concatenate(seconds)

    found = _threads(rows_band, _spans(n, block))
    first, second = np.concatenate([f for f, _ in found]), np.concatenate([s for _, s in found])
    bound = lower[first, second].astype(np.float64)
    upper = bound + h[first] + h[second]
    certain = upper < q[first]  # certainly below for its own pair of bounds: counted, no distance
    below += np.bincount(first[certain], minlength=n)
    cap = q.copy()
    inside = bound <= q[first]
    np.maximum.at(cap, first[inside], upper[inside])
    keep = ~certain & (bound <= cap[first])
    first, second = first[keep], second[keep]
    return _kth_of_groups(first, _exact_pairs(x, xt, first, second), k - below, n)


def _chunked_core_squares(x: Tensor, bounds: _Bounds, k: int, chunk: int) -> Tensor:
    """``_dense_core_squares`` in torch, by chunks of rows (the chunk's bounds are its only N-wide
    buffers)."""
    n = len(x)
    h, h_max = bounds.h, bounds.h_max
    core2 = torch.empty(n, dtype=torch.float64, device=x.device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lower = _lower_rows(bounds, start, stop)
        kth = lower.kthvalue(k, dim=1).values.double()
        low = _round_down(kth - h[start:stop] - h_max, lower.dtype)
        high = _round_up(kth + h[start:stop] + h_max, lower.dtype)
        below = (lower < low[:, None]).sum(1)
        first, second = ((lower >= low[:, None]) & (lower <= high[:, None])).nonzero(as_tuple=True)
        bound = lower[first, second].double()
        upper = bound + h[start + first] + h[second]
        certain = upper < kth[first]
        below = below + torch.bincount(first[certain], minlength=stop - start)
        inside = bound <= kth[first]
        cap = kth.scatter_reduce(0, first[inside], upper[inside], "amax")
        keep = ~certain & (bound <= cap[first])
        first, second = first[keep], second[keep]
        core2[start:stop] = _kth_of_groups(first, _exact_torch(x, first + start, second), k - below, stop - start)
    return core2


def _exact_pairs(x: np.ndarray, xt: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``_exact_numpy`` of pairs that may repeat in either order: each unordered pair once, on the
    CPU's threads."""
    n = len(x)
    unique, inverse = np.unique(np.minimum(first, second) * n + np.maximum(first, second), return_inverse=True)
    a, b = np.divmod(unique, n)
    values = _threads(lambda span: _exact_numpy(x, xt, a[span[0]:span[1]], b[span[0]:span[1]]),
                      _spans(len(unique), 2048))
    return np.concatenate(values)[inverse] if values else np.empty(0)


def _kth_of_groups(group, values, rank, n: int):
    """Per group g (0..n-1): the ``rank[g]``-th smallest (1-based) of its ``values``."""
    if isinstance(values, Tensor):
        order = torch.sort(values, stable=True).indices
        order = order[torch.sort(group[order], stable=True).indices]
        counts = torch.bincount(group, minlength=n)
        starts = torch.cumsum(counts, 0) - counts
    else:
        order = np.lexsort((values, group))
        counts = np.bincount(group, minlength=n)
        starts = np.cumsum(counts) - counts
    if bool(((rank < 1) | (rank > counts)).any()):
        raise RuntimeError("core distance bounds failed: please report this map")
    return values[order][starts + rank - 1]
