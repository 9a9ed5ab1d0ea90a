"""Exact HDBSCAN, fast: scikit-learn's own distances, found without computing most of them exactly.

HDBSCAN is core distances (the ``min_samples``-th smallest distance, the point itself included)
-> mutual reachability ``max(core_i, core_j, d_ij)`` -> minimum spanning tree -> single linkage ->
condensed tree -> clusters. scikit-learn's public ``HDBSCAN`` on 256-d features builds a KD-tree
that does not prune in 256 dimensions and computes every distance in scalar Cython (3-4 s per
64 x 64 map on 2 cores). The single linkage and cluster selection here are scikit-learn's own
routines (private: ``pyproject.toml`` pins scikit-learn below its next minor release); the tests
compare labels, noise included, with the public class.

**Exact values.** scikit-learn computes a distance as ``sqrt(sum((x_k - y_k)^2))`` in float64, the
features added one after the other (its Cython loop). ``exact_distances`` does the same, in the same
order, so its values equal scikit-learn's bit for bit (tested), and so do the core distances and
every weight of the spanning trees built from them. Adding 256 features in order is slow, so it is
done only for the few pairs whose value decides something; the rest is decided by bounds. The trees
work on squared distances as *keys* (``_square_keys``: per square, the least double with the same
correctly rounded root, so that keys order and tie exactly as scikit-learn's rooted values) and root
only their N-1 weights.

**Bounds.** One matrix product in float32 on centred rows (``sigma_i + sigma_j - 2 y_i.y_j``) gives
every squared distance within a rigorous bound: ``|fl(x.y) - x.y| <= gamma_C sum|x_k y_k|`` for any
summation order (``gamma_C = C u / (1 - C u)``, ``u = 2^-24``), plus the roundings of the norms, the
sums, the centring and underflow. ``_Bounds`` shifts the product below every squared distance
(``lower_ij``) and keeps per point ``h_i`` with ``D_ij^2 <= lower_ij + h_i + h_j``, with a margin for
the rounding of the tests themselves. Centring on the mean shrinks the norms, hence the bound. A
float32 product must then really be float32: ``torch.set_float32_matmul_precision`` is held at
"highest" around it (no TF32, no bfloat16). Rows whose scale float32 cannot hold use float64.

- Core distance of i: the k-th smallest ``lower`` of its row gives a band of candidates (the point
  itself included); those certainly below are counted, the others computed exactly, and the k-th
  smallest exact value taken: scikit-learn's ``kneighbors`` distance, bit for bit.
- A pair certainly within the larger core distance of its ends (``lower_ij + h_i + h_j <=
  max(core_i, core_j)^2``) has mutual reachability ``max(core_i, core_j)`` exactly, with no distance.

Two ways to the minimum spanning tree (``mst=``):

- ``"prim"``: scikit-learn's own Prim (``mst_from_data_matrix``: start at node 0, add the
  lowest-index node of least reachability, by an edge from the first tree node that reached it),
  run on lower bounds ``max(key(core_i^2), key(core_j^2), lower_ij)`` over the N x N float32 ``lower``
  on the host (``prim_tree``: one BLAS ``syrk``, its triangle mirrored). A node's least reachability
  stays a lower bound of the true one, and the node chosen is certainly Prim's choice, tie rules
  included, when its value is exact: the edge that set it is certified, or the node was refined (the
  tree nodes whose lower bound does not exceed the least upper bound, the uncertain ones computed
  exactly, the earliest of least value kept). Then scikit-learn's ``_process_mst`` (its own
  ``argsort`` of the weights in Prim order). The tree is scikit-learn's, in its order, weights bit for
  bit (tested against its ``mst_from_data_matrix``), hence its partition, ties included. 4 N^2 bytes
  on the host; the default on the CPU while they fit the memory budget.
- ``"boruvka"``: Boruvka rounds in plain torch on any device, from the rows, by chunks of rows: no
  N x N matrix is ever held (``boruvka_tree``; HRNet's 256 x 256 maps). Per round and chunk: the
  float32 bounds of the chunk's rows, the edges inside a component masked, each row's least upper
  bound, then its lightest edge out of its component among the certified pairs (``min``: torch
  documents the first index among equal values) and the few uncertain pairs not above that bound
  (computed exactly, two scatter-mins); then per component its lightest edge (two scatter-mins),
  pointer jumping to merge, one host sync (is every map down to one component?). Edges are ordered
  strictly by (weight, edge id ``min(i, j) * N + max(i, j)``): for a fixed row the id grows with the
  column, so the first-index minimum follows that order, the tree is the unique minimum spanning tree
  of that order, and no cycle can form (exact weights are symmetric by construction). Any chunking
  gives the same tree, bit for bit. Mutual reachability with ``min_samples`` in the tens to hundreds
  gives every point many tied lightest edges (its core distance), so 2-4 rounds finish a map. Peak
  memory of B maps of N x C (rows of ``e`` bytes), ``R`` rows per chunk: ``CHUNK_BYTES_PER_PAIR * R *
  N`` (26: the chunk's float32 bounds, two float64 and three bool R x N buffers, 23 bytes, and slack)
  ``+ B N C (e + 8)`` (the rows, their centred float32 copy, the matrix product's packing) ``+ 200 B N``
  (per-point vectors) ``+ EXACT_BYTES`` (32 MiB at most, for exact sums); ``chunk_rows`` sizes ``R`` to
  the memory budget (measured on the CPU: ``benchmarks/results/clustering_speed.md``; on a GPU the
  test asserts the budget). For N = 65,536 (256 x 256), C = 256, float32: 1.6 MiB per row of a chunk
  and 237 MiB fixed, so 6.7 GiB at R = 4096 and 1.9 GiB at R = 1024 (a 65,536^2 float32 matrix
  alone would be 16 GiB). The default on a GPU.
- ``"auto"`` (default): Prim on the CPU while its matrix fits the budget, Boruvka otherwise.

**The tie limit.** Both trees have scikit-learn's weights, so the single-linkage hierarchy (the
clusters at every distance, as sets) is scikit-learn's. But where three or more pieces merge at
exactly the same mutual reachability, the order in which a binary dendrogram performs those merges
is arbitrary, and the condensed tree depends on it. scikit-learn's order comes from its Prim tree
and NumPy's unstable, SIMD ``argsort`` (so it can change with the CPU); the Prim path copies both;
Boruvka's comes from its (weight, edge id) order. With two or more tied pieces of at least
``min_cluster_size`` points, the points of the smaller tied pieces may then join either large piece
or be noise; every other point keeps its label. If some order can also join small tied pieces into
a side of ``min_cluster_size`` points (lattices: ties everywhere), any label may change. The tests
(``tests/helpers/hdbscan_ties.py``) find these points and assert Boruvka's labels equal to the public
class's everywhere else. On continuous FOCAL-like maps the tie is a stray point whose core distance
reaches two clusters at once (its own label is arbitrary); flat regions (duplicate rows, at distance
0 here as in scikit-learn) add tied pieces, but a region of at least ``min_samples`` identical rows is
never split by either path (``benchmarks/results/clustering_speed.md`` counts both)."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch
from sklearn.cluster._hdbscan._linkage import MST_edge_dtype, make_single_linkage
from sklearn.cluster._hdbscan._tree import tree_to_labels
from sklearn.cluster._hdbscan.hdbscan import _process_mst
from torch import Tensor

from focal_pl.clustering.methods import MST_METHODS, MstMethod

CPU_MEMORY_BUDGET = 2 << 30  # bytes: Prim's N x N float32 lower bounds (up to N ~ 23,000), Boruvka's chunks
CHUNK_BYTES_PER_PAIR = 26  # Boruvka's peak bytes per (row of a chunk, point) pair: 23 live, and slack
EXACT_BYTES = 32 << 20  # the most an exact sum holds at once (pairs x features x float64)
_SMALL = 64  # below this many pairs, exact distances go one pair per row (no per-feature loop)
WORKSPACE_BYTES = 256 << 20  # Prim's N x N buffer is kept between calls up to this size (N = 8192)
_WORKSPACE: dict = {}
_WORKSPACE_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------ exact values


def exact_distances(rows: np.ndarray | Tensor, first, second) -> np.ndarray | Tensor:
    """scikit-learn's euclidean distances between ``rows[first]`` and ``rows[second]``, float64, bit
    for bit: the differences in float64, squared, added one feature after the other, rooted (its
    Cython loop's order). NumPy rows give a NumPy array, torch rows a tensor on their device."""
    if isinstance(rows, Tensor):
        first = torch.as_tensor(first, device=rows.device)
        return _sqrt64(_exact_torch(rows, first, torch.as_tensor(second, device=rows.device)))
    rows = np.asarray(rows)
    return np.sqrt(_exact_numpy(rows, np.ascontiguousarray(rows.T), np.asarray(first), np.asarray(second)))


def _exact_numpy(x: np.ndarray, xt: np.ndarray, first: np.ndarray, second: np.ndarray,
                 chunk: int = 2048) -> np.ndarray:
    """Squared distances as scikit-learn sums them (not rooted), on the host. ``xt`` is ``x``
    transposed (C x N): each feature's differences then lie in one row, and the features are added
    row after row (in order for every pair, many pairs per vector operation)."""
    m = len(first)
    out = np.empty(m)
    if m < _SMALL:
        d = np.subtract(x[first], x[second], dtype=np.float64)
        np.multiply(d, d, out=d)
        np.add.accumulate(d, axis=1, out=d)
        out[:] = d[:, -1] if m else 0.0
        return out
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        d = np.subtract(np.take(xt, first[start:stop], axis=1), np.take(xt, second[start:stop], axis=1),
                        dtype=np.float64)
        np.multiply(d, d, out=d)
        total = out[start:stop]
        total[:] = d[0]
        for feature in d[1:]:
            total += feature
    return out


def _exact_torch(x: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """``_exact_numpy`` in torch (any device): one vector add per feature, in order."""
    out = torch.empty(first.numel(), dtype=torch.float64, device=x.device)
    chunk = max(1, EXACT_BYTES // (8 * max(1, x.shape[1])))
    for start in range(0, first.numel(), chunk):
        d = x[first[start : start + chunk]].double() - x[second[start : start + chunk]].double()
        d.mul_(d)
        total = d[:, 0].clone()
        for k in range(1, d.shape[1]):
            total += d[:, k]
        out[start : start + chunk] = total
    return out


def _sqrt64(values: Tensor) -> Tensor:
    """Correctly rounded float64 square roots, as scikit-learn's C ``sqrt``: torch's vectorised CPU
    ``sqrt`` can be an ulp off (CUDA's double ``sqrt`` is IEEE), so the host takes NumPy's."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sqrt(values.numpy()))
    return values.sqrt()


def _square_keys(squares):
    """Per squared distance, the least double with the same correctly rounded square root: compared
    as keys, squared values order and tie exactly as scikit-learn's rooted distances (two squares one
    ulp apart can share a root), so the trees work on squares and root only their N-1 weights."""
    if isinstance(squares, Tensor):
        root, lib, sqrt = _sqrt64(squares), torch, _sqrt64
    elif len(squares) <= 8:  # a refinement's few values: Python's IEEE sqrt and nextafter
        return np.array([_square_key(float(v)) for v in squares])
    else:
        root, lib, sqrt = np.sqrt(squares), np, np.sqrt
    key = root * root  # within an ulp or two of the least square with this root
    up, down = lib.full_like(key, math.inf), lib.full_like(key, -math.inf)
    for _ in range(4):  # up to a square with this root ...
        low = sqrt(key) < root
        if not bool(low.any()):
            break
        key = lib.where(low, lib.nextafter(key, up), key)
    for _ in range(4):  # ... then down while the root holds
        lower = lib.nextafter(key, down)
        same = (lower >= 0) & (sqrt(lib.maximum(lower, 0 * lower)) == root)
        if not bool(same.any()):
            break
        key = lib.where(same, lower, key)
    return key


def _square_key(square: float) -> float:
    root = math.sqrt(square)
    key = root * root
    while math.sqrt(key) < root:
        key = math.nextafter(key, math.inf)
    while key > 0 and math.sqrt(math.nextafter(key, -math.inf)) == root:
        key = math.nextafter(key, -math.inf)
    return key


# ------------------------------------------------------------------------------------------ bounds


class _Bounds:
    """Centred low-precision rows for one matrix product, with the bound of its squared distances.

    ``sigma_i + sigma_j - 2 y_i.y_j`` (computed in ``dtype``) lies below ``D_ij^2`` by at least
    ``b_ij`` and at most ``3 b_ij``, ``b_ij = beta (S_i + S_j) + eta`` (``S = |y|^2``; ``eta`` covers
    underflow). With ``h = 5 beta S + 2.5 eta``, ``D_ij^2 <= lower_ij + h_i + h_j - b_ij``: one ``b``
    of margin for the rounding of the tests themselves (float32 comparisons, sums)."""

    def __init__(self, x: np.ndarray | Tensor):
        c = x.shape[1]
        for dtype in ("float32", "float64"):
            info = np.finfo(dtype)
            u = float(info.eps) / 2
            beta = c * u / (1 - c * u) + 32 * u
            eta = (c + 32) * float(info.tiny)
            if isinstance(x, Tensor):
                x64 = x.double()
                self.y = (x64 - x64.mean(0)).to(getattr(torch, dtype))
                norms = self.y.double().square().sum(1)
                largest = float(norms.max()) if len(norms) else 0.0
            else:
                centred = np.subtract(x, x.mean(0, dtype=np.float64), dtype=np.float64)
                self.y = centred.astype(dtype)
                norms = np.einsum("ij,ij->i", self.y, self.y, dtype=np.float64)
                largest = float(norms.max()) if len(norms) else 0.0
            # float32 unless its range cannot hold the squared norms (overflow, or all underflow)
            if dtype == "float64" or (math.isfinite(largest) and largest < 1e30 and not 0 < largest < 1e-30):
                break
        if not math.isfinite(largest):  # NaN or inf features (or squares beyond float64)
            raise ValueError("HDBSCAN needs finite features (and squared distances within float64)")
        self.sigma = (norms * (1 - 2 * beta) - eta).astype(dtype) if not isinstance(x, Tensor) else \
            (norms * (1 - 2 * beta) - eta).to(self.y.dtype)
        self.h = 5 * beta * norms + 2.5 * eta
        self.h_max = float(self.h.max()) if len(self.h) else 0.0


@contextlib.contextmanager
def _ieee_matmul():
    """float32 matrix products in float32 (no TF32, no bfloat16) for the bounds to hold."""
    before = torch.get_float32_matmul_precision()
    if before != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if before != "highest":
            torch.set_float32_matmul_precision(before)


def _thresholds(core2, bounds: _Bounds):
    """Per point: pairs whose lower bound is at most this are certainly within the point's core
    distance (``lower + h_i + h_j <= core_i^2``), whatever the other end."""
    return core2 - bounds.h - bounds.h_max


def _round_down(values: Tensor, dtype: torch.dtype) -> Tensor:
    """float64 -> ``dtype``, never above the float64 value."""
    low = values.to(dtype)
    return torch.where(low.double() > values, torch.nextafter(low, torch.full_like(low, -math.inf)), low)


def _round_up(values: Tensor, dtype: torch.dtype) -> Tensor:
    high = values.to(dtype)
    return torch.where(high.double() < values, torch.nextafter(high, torch.full_like(high, math.inf)), high)


def _down(values: np.ndarray, dtype) -> np.ndarray:
    low = values.astype(dtype)
    return np.where(low > values, np.nextafter(low, -np.inf), low)


def _up(values: np.ndarray, dtype) -> np.ndarray:
    high = values.astype(dtype)
    return np.where(high < values, np.nextafter(high, np.inf), high)


# ------------------------------------------------------------------------------------------ Prim (host)


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


def _host_rows(rows: np.ndarray | Tensor) -> np.ndarray:
    x = rows.detach().cpu().numpy() if isinstance(rows, Tensor) else np.asarray(rows)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def _dense_lower_bounds(bounds: _Bounds) -> np.ndarray:
    """``sigma_i + sigma_j - 2 y_i.y_j`` for all pairs, N x N (C order), exactly symmetric: one
    symmetric rank-k update (BLAS ``syrk``: half the products of a full matrix product) on the outer
    sum, its triangle then mirrored. BLAS runs on one thread: its idle workers spin for a while after
    a call, taking a core from the NumPy work that follows (which has threads of its own)."""
    from scipy.linalg import blas

    y, sigma = bounds.y, bounds.sigma
    n = len(y)
    syrk = blas.ssyrk if y.dtype == np.float32 else blas.dsyrk
    lower = _workspace(n, y.dtype)
    np.add(sigma[:, None], sigma[None, :], out=lower)
    # Fortran's lower triangle is the C-order upper one of the transpose (the same symmetric matrix)
    with _one_blas_thread():
        filled = syrk(-2.0, np.asfortranarray(y), beta=1.0, c=lower, overwrite_c=1, lower=1)
    if not np.shares_memory(filled, lower):
        raise RuntimeError("BLAS syrk did not update the matrix in place")
    matrix = lower.T
    _mirror_numpy(matrix[None])
    return matrix


def _workspace(n: int, dtype) -> np.ndarray:
    """An N x N Fortran-order buffer: the one the last call kept, if its shape, else a new one (its
    pages are then faulted in on first write, a few ms for 64 MiB)."""
    with _WORKSPACE_LOCK:
        kept = _WORKSPACE.pop((n, np.dtype(dtype)), None)
    return kept if kept is not None else np.empty((n, n), dtype=dtype, order="F")


def _keep_workspace(matrix: np.ndarray) -> None:
    """Keep the N x N buffer behind ``matrix`` (its C-order transpose) for the next call, if at most
    ``WORKSPACE_BYTES``; one buffer at a time (a concurrent call gets its own)."""
    buffer = matrix.T
    if buffer.nbytes <= WORKSPACE_BYTES and buffer.flags.f_contiguous:
        with _WORKSPACE_LOCK:
            _WORKSPACE.clear()
            _WORKSPACE[(len(buffer), buffer.dtype)] = buffer


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # scikit-learn's own dependency

    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread():
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


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


def _exact_pairs(x: np.ndarray, xt: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``_exact_numpy`` of pairs that may repeat in either order: each unordered pair once, on the
    CPU's threads."""
    n = len(x)
    unique, inverse = np.unique(np.minimum(first, second) * n + np.maximum(first, second), return_inverse=True)
    a, b = np.divmod(unique, n)
    values = _threads(lambda span: _exact_numpy(x, xt, a[span[0]:span[1]], b[span[0]:span[1]]),
                      _spans(len(unique), 2048))
    return np.concatenate(values)[inverse] if values else np.empty(0)


def _spans(n: int, step: int) -> list[tuple[int, int]]:
    """(start, stop) ranges covering 0..n: a few per thread, whole multiples of ``step``."""
    parts = max(1, min(4 * _workers(), -(-n // step)))
    size = -(-(-(-n // parts)) // step) * step
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def _workers() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _threads(fn, items: list):
    """``[fn(item) for item in items]`` on the CPU's threads (NumPy releases the GIL in its loops, sorts
    and copies); a pool per call, so that nothing outlives a fork."""
    if _workers() == 1 or len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(_workers()) as pool:
        return list(pool.map(fn, items))


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


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a sparse 2-d bool array, by 8-byte words first."""
    cols = mask.shape[1]
    if cols % 8 or not mask.flags.c_contiguous:
        return np.nonzero(mask)
    words = np.flatnonzero(mask.view(np.uint64))
    where, offset = np.nonzero(mask.reshape(-1, 8)[words])
    flat = words[where] * 8 + offset
    return flat // cols, flat % cols


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


# ------------------------------------------------------------------------------------------ Boruvka (any device)


def boruvka_tree(rows: Tensor | np.ndarray, min_samples: int, rows_per_chunk: int | None = None,
                 memory_budget: int | None = None) -> tuple[Tensor, Tensor]:
    """Minimum spanning trees of the mutual reachability of ``rows`` (B x) N x C, on their device, by
    chunks of rows (module docstring): no N x N matrix. Returns (edge ids (B x) N-1 int64, weights
    (B x) N-1 float64, scikit-learn's values) sorted by (weight, edge id), on the rows' device.
    ``rows_per_chunk`` (None: as many as ``memory_budget`` allows, ``chunk_rows``) changes the memory,
    never the result."""
    data = torch.as_tensor(rows)
    single = data.dim() == 2
    data = data[None] if single else data
    if data.dim() != 3:
        raise ValueError(f"rows must be (B x) N x C, got shape {tuple(data.shape)}")
    b, n, c = data.shape
    device = data.device
    if rows_per_chunk is None:
        rows_per_chunk = chunk_rows(n, c, _memory_budget(device, memory_budget), data.element_size(), b)
    chunk = max(1, min(n, int(rows_per_chunk)))
    maps = []
    for m in range(b):
        bounds = _Bounds(data[m])
        core2 = _chunked_core_squares(data[m], bounds, min_samples, chunk)
        threshold = _round_down(_thresholds(core2, bounds), bounds.y.dtype)
        maps.append((data[m], bounds, core2, _square_keys(core2), threshold))

    def minima(pending: list[int], local_comp: Tensor, rounds: int) -> tuple[Tensor, Tensor]:
        weight = torch.full((b, n), math.inf, dtype=torch.float64, device=device)
        target = torch.zeros((b, n), dtype=torch.int64, device=device)
        for m in pending:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                weight[m, start:stop], target[m, start:stop] = _chunk_minima(*maps[m], local_comp[m], start, stop)
        return weight, target

    edges, keys = _boruvka_rounds(b, n, device, torch.float64, minima)
    weights = _sqrt64(keys)
    return (edges[0], weights[0]) if single else (edges, weights)


def chunk_rows(n: int, c: int, memory_budget: int, element_size: int = 4, maps: int = 1) -> int:
    """Rows per Boruvka chunk for ``maps`` maps of N x C within ``memory_budget`` bytes: the budget,
    less the rows (``N C (element + 8)`` per map: the rows, their centred float32 copy and a matrix
    product's packing), per-point vectors and ``EXACT_BYTES``, over ``CHUNK_BYTES_PER_PAIR * N`` (at
    least one row; module docstring)."""
    fixed = maps * n * (c * (element_size + 8) + 200) + EXACT_BYTES
    return max(1, min(n, (memory_budget - fixed) // (CHUNK_BYTES_PER_PAIR * n)))


def _lower_rows(bounds: _Bounds, start: int, stop: int) -> Tensor:
    """The lower bounds of the squared distances, rows start..stop against all points (the bounds'
    dtype)."""
    y, sigma = bounds.y, bounds.sigma
    with _ieee_matmul():
        lower = torch.addmm(sigma[start:stop, None], y[start:stop], y.T, alpha=-2.0)
    return lower.add_(sigma[None, :])


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


def _chunk_minima(x: Tensor, bounds: _Bounds, core2: Tensor, keys: Tensor, threshold: Tensor, comp: Tensor,
                  start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Each row's lightest edge out of its component, (exact square key, first column), rows
    start..stop: the certified pairs' ``max(key_i, key_j)`` by one masked ``min``, the uncertain pairs
    not above the row's least upper bound computed exactly (module docstring)."""
    n = len(keys)
    lower = _lower_rows(bounds, start, stop)
    outside = comp[start:stop, None] != comp[None, :]
    larger = torch.maximum(keys[start:stop, None], keys[None, :])
    larger.masked_fill_(~outside, math.inf)
    certified = lower <= threshold[start:stop, None]
    certified |= lower <= threshold[None, :]
    work = lower.double().add_(bounds.h[start:stop, None]).add_(bounds.h[None, :])  # >= squared distance
    torch.maximum(work, larger, out=work)  # upper bounds (= larger where certified)
    least_upper = work.min(1).values
    work.copy_(lower)  # lower bounds (a cast in place, where a mixed maximum may make a temporary)
    torch.maximum(work, larger, out=work)
    uncertain = work <= least_upper[:, None]
    uncertain &= outside
    certified = certified.logical_not_()  # from here: not certified
    uncertain &= certified
    larger.masked_fill_(certified, math.inf)
    weight, target = larger.min(1)
    rows, cols = uncertain.nonzero(as_tuple=True)
    if rows.numel():
        exact = _square_keys(_exact_torch(x, start + rows, cols))
        value = torch.maximum(torch.maximum(keys[start + rows], keys[cols]), exact)
        best = torch.full_like(weight, math.inf).scatter_reduce_(0, rows, value, "amin")
        at = value == best[rows]
        col = torch.full_like(target, n).scatter_reduce_(0, rows[at], cols[at], "amin")
        take = (best < weight) | ((best == weight) & (col < target))
        weight, target = torch.where(take, best, weight), torch.where(take, col, target)
    return weight, target


# ------------------------------------------------------------------------------------------ Boruvka rounds


def boruvka_mst(
    reach: Tensor, overwrite: bool = False, block: int | None = None, symmetric: bool = False
) -> tuple[Tensor, Tensor]:
    """Minimum spanning trees of the complete graphs ``reach`` (B x) N x N, computed on its device
    (the rounds of ``boruvka_tree``, on a given matrix).

    Returns (edge ids (B x) N-1 int64, weights (B x) N-1) on ``reach``'s device, sorted by (weight,
    edge id); edge id ``min(i, j) * N + max(i, j)``. The tree is the unique minimum of the strict order
    (weight, edge id), where (i, j) weighs ``reach[min(i, j), max(i, j)]`` (the upper triangle is copied
    onto the lower one first, unless ``symmetric`` says it is already so). ``overwrite=True`` works in
    ``reach`` itself (its values are then garbage) instead of a copy; ``block`` bounds the elements of
    each masked slice (its bool mask is the only other large buffer).
    """
    single = reach.dim() == 2
    reach = reach[None] if single else reach
    if reach.dim() != 3 or reach.shape[-1] != reach.shape[-2]:
        raise ValueError(f"reach must be (B x) N x N, got shape {tuple(reach.shape)}")
    work = reach if overwrite else reach.clone()
    b, n, _ = work.shape
    device, dtype = work.device, work.dtype
    block = block or (1 << 28 if device.type == "cuda" else 1 << 24)
    if not symmetric:
        _mirror(work)  # (i, j) must weigh the same from both ends, or a cycle can form
    mask_buffer = torch.empty(max(n, min(block, b * n * n)), dtype=torch.bool, device=device)
    work.diagonal(dim1=1, dim2=2).fill_(math.inf)

    def minima(pending: list[int], local_comp: Tensor, rounds: int) -> tuple[Tensor, Tensor]:
        weight = torch.full((b, n), math.inf, dtype=dtype, device=device)
        target = torch.zeros((b, n), dtype=torch.int64, device=device)
        for maps, rows in _blocks(pending, n, block):
            part = work[maps, rows]
            if rounds > 1:  # in the first round every node is its own component: the diagonal
                inside = mask_buffer[: part.numel()].view(part.shape)
                torch.eq(local_comp[maps, rows, None], local_comp[maps, None, :], out=inside)
                part.masked_fill_(inside, math.inf)
            weight[maps, rows], target[maps, rows] = part.min(-1)
        return weight, target

    edges, weights = _boruvka_rounds(b, n, device, dtype, minima)
    return (edges[0], weights[0]) if single else (edges, weights)


def _boruvka_rounds(b: int, n: int, device: torch.device, dtype: torch.dtype, minima) -> tuple[Tensor, Tensor]:
    """Boruvka on B graphs of N nodes whose rows' lightest edges out of their component ``minima(
    pending maps, local component ids B x N, round)`` gives (weight B x N, column B x N; infinite weight
    where none). Per round: per component its lightest edge in the order (weight, edge id) by two
    scatter-mins, hooks, pointer jumping, one host sync. Returns the trees sorted by (weight, edge id)."""
    labels = torch.arange(b * n, device=device)  # global node ids, also the component labels
    comp = labels.clone()  # the label of each node's component
    offsets = (torch.arange(b, device=device) * n)[:, None]
    local = torch.arange(n, device=device).expand(b, n)
    big = torch.iinfo(torch.int64).max
    slot_edge = torch.full((b * n,), -1, dtype=torch.int64, device=device)  # the edge that merged a label
    slot_weight = torch.full((b * n,), math.inf, dtype=dtype, device=device)
    pending, components, rounds = (list(range(b)) if n > 1 else []), n, 0
    while pending:
        rounds += 1
        if rounds > math.ceil(math.log2(n)) + 1:
            raise RuntimeError("Boruvka did not converge: is the reachability finite?")
        # 1. each row's lightest edge leaving its component
        weight, target = minima(pending, comp.view(b, n) - offsets, rounds)
        edge = (torch.minimum(local, target) * n + torch.maximum(local, target)).flatten()
        weight = weight.flatten()
        # 2. each component's lightest edge in the order (weight, edge id): two scatter-mins
        best = torch.full((b * n,), math.inf, dtype=dtype, device=device).scatter_reduce_(
            0, comp, weight, "amin")
        edge = torch.where((weight == best[comp]) & (weight < math.inf), edge, big)
        best_edge = torch.full((b * n,), big, device=device).scatter_reduce_(0, comp, edge, "amin")
        has = best_edge != big  # only labels of components that have an edge out
        # 3. hook each component to the one across its edge; a mutual pair keeps the smaller label
        base = labels - labels % n
        chosen = torch.where(has, best_edge, 0)
        first, second = comp[base + chosen // n], comp[base + chosen % n]
        parent = torch.where(has, torch.where(first == labels, second, first), labels)
        mutual = (parent[parent] == labels) & (parent != labels)
        parent = torch.where(mutual & (labels < parent), labels, parent)
        merged = parent != labels
        slot_edge = torch.where(merged, best_edge, slot_edge)
        slot_weight = torch.where(merged, best, slot_weight)
        # 4. pointer jumping to the roots (depth < components), then relabel every node
        for _ in range(max(1, math.ceil(math.log2(components)))):
            parent = parent[parent]
        comp = parent[comp]
        per_map = (comp.view(b, n) == labels.view(b, n)).sum(1).tolist()  # the round's one host sync
        pending = [m for m in range(b) if per_map[m] > 1]
        components = max(per_map)
    keep = slot_edge >= 0
    edges, weights = slot_edge[keep].view(b, n - 1), slot_weight[keep].view(b, n - 1)
    edges, order = edges.sort(dim=1)  # then stably by weight: the order (weight, edge id)
    weights, order = weights.gather(1, order).sort(dim=1, stable=True)
    return edges.gather(1, order), weights


def _blocks(maps: list[int], n: int, block: int):
    """(map slice, row slice) pairs covering every row of ``maps``, at most ``block`` elements each:
    runs of consecutive whole maps when a map fits, else slices of one map's rows."""
    rows_per_block = max(1, block // n)
    if rows_per_block < n:
        for m in maps:
            for start in range(0, n, rows_per_block):
                yield slice(m, m + 1), slice(start, min(n, start + rows_per_block))
        return
    per_block, run = rows_per_block // n, []
    for m in maps:
        if run and (m != run[-1] + 1 or len(run) == per_block):
            yield slice(run[0], run[-1] + 1), slice(None)
            run = []
        run.append(m)
    if run:
        yield slice(run[0], run[-1] + 1), slice(None)


def _mirror(matrix: Tensor) -> Tensor:
    """Copy the upper triangle of B x N x N ``matrix`` onto the lower one, in place, by strips of
    columns: on a CPU narrow ones through NumPy (a transposed copy that stays in cache, and no
    thread barrier per strip), on a GPU wide ones."""
    if matrix.device.type == "cpu" and matrix.dtype in (torch.float64, torch.float32):
        _mirror_numpy(matrix.detach().numpy())
        return matrix
    return _mirror_torch(matrix)


def _mirror_numpy(matrix: np.ndarray | Tensor, width: int = 16):
    """``_mirror`` of a B x N x N NumPy array (or CPU tensor), in place, its strips on the CPU's
    threads (each writes its own columns below the diagonal, reads only above it)."""
    batch = matrix.detach().numpy() if isinstance(matrix, Tensor) else matrix
    n = batch.shape[-1]

    def strips(span: tuple[int, int]) -> None:
        for m in batch:
            for start in range(span[0], span[1], width):
                stop = min(n, start + width)
                square = m[start:stop, start:stop]
                upper = _upper_indices(stop - start)
                square.T[upper] = square[upper]
                if stop < n:
                    m[stop:, start:stop] = m[start:stop, stop:].T

    # strips near the top copy the most: interleave them over the threads
    spans = _spans(n, width)
    _threads(strips, spans[::2] + spans[1::2])
    return matrix


def _mirror_torch(matrix: Tensor, width: int = 2048) -> Tensor:
    n = matrix.shape[-1]
    for start in range(0, n, width):
        stop = min(n, start + width)
        square = matrix[:, start:stop, start:stop]
        square.copy_(torch.triu(square) + torch.triu(square, 1).transpose(1, 2))
        if stop < n:
            matrix[:, stop:, start:stop] = matrix[:, start:stop, stop:].transpose(1, 2)
    return matrix


@functools.lru_cache(maxsize=8)
def _upper_indices(width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(width, 1)


# ------------------------------------------------------------------------------------------ labels


def labels_from_mst(
    edges: np.ndarray,
    weights: np.ndarray,
    n: int,
    min_cluster_size: int,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    presorted: bool = False,
) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) from a minimum spanning tree's N-1 (edge id, weight) pairs, by
    scikit-learn's single linkage and cluster selection, the edges sorted by (weight, edge id)
    (``presorted``: they already are, as ``boruvka_tree`` returns them)."""
    edges = np.asarray(edges, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if not presorted:
        order = np.lexsort((edges, weights))
        edges, weights = edges[order], weights[order]
    mst = np.empty(n - 1, dtype=MST_edge_dtype)
    mst["current_node"], mst["next_node"] = np.divmod(edges, n)
    mst["distance"] = weights
    return _labels(make_single_linkage(mst), min_cluster_size, allow_single_cluster, cluster_selection_method)


def _labels(tree: np.ndarray, min_cluster_size: int, allow_single_cluster: bool, method: str) -> np.ndarray:
    labels, _ = tree_to_labels(tree, min_cluster_size, method, allow_single_cluster, 0.0, None)
    return np.asarray(labels, dtype=np.int64)


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
    min_samples, allow_single_cluster=...)`` with the euclidean metric, up to the tie limit (module
    docstring; none for Prim).

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
        return [_labels(_process_mst(prim_tree(r, samples)), min_cluster_size, allow_single_cluster,
                        cluster_selection_method) for r in host]
    edges, weights = boruvka_tree(data.to(device), samples, memory_budget=memory_budget)
    edges, weights = edges.cpu().numpy(), weights.cpu().numpy()
    return [labels_from_mst(e, w, n, min_cluster_size, allow_single_cluster, cluster_selection_method, True)
            for e, w in zip(edges, weights)]


def _memory_budget(device: torch.device, memory_budget: int | None) -> int:
    if memory_budget is not None:
        return int(memory_budget)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return CPU_MEMORY_BUDGET
