"""Exact HDBSCAN, fast: the dense work in torch (CPU or GPU), the tree work in scikit-learn's own code.

HDBSCAN is core distances (the ``min_samples``-th smallest distance, the point itself included)
-> mutual reachability ``max(core_i, core_j, d_ij)`` -> minimum spanning tree -> single linkage ->
condensed tree -> clusters. scikit-learn's public ``HDBSCAN`` on 256-d features builds a KD-tree
that does not prune in 256 dimensions and computes every distance in scalar Cython (5-7 s per
64 x 64 map on 2 cores). Here the distances come from one (batched) matrix product, and the
single linkage and cluster selection are scikit-learn's own routines (private: ``pyproject.toml``
pins scikit-learn below its next minor release), so the partition is scikit-learn's; tests compare
labels, noise included, with the public class.

Distances: a matrix product is not bitwise symmetric, so its upper triangle is mirrored (edge
(i, j) weighs the same from both ends, as Boruvka's tie-breaking needs, and a core distance ties
exactly with the edges equal to it, as in scikit-learn). ``|x|^2 + |y|^2 - 2 x.y`` cancels for
(near-)duplicate rows (a flat image region gives exact duplicates, whose computed distance would be
~1e-8 instead of 0): rows whose nearest neighbours are within that rounding are found from the
core-distance ``topk`` at no extra cost, and their pairs recomputed exactly (0 between identical
rows, ``sum((x - y)^2)`` otherwise).

Two ways to the minimum spanning tree (``mst=``):

- ``"prim"``: Prim over the N x N mutual reachability on the host, with the public class's rules
  (scikit-learn's ``mst_from_data_matrix``: start at node 0, add the lowest-index node of least
  reachability, by an edge from the first tree node that reached it), then scikit-learn's
  ``_process_mst`` (its own ``argsort`` of the weights in Prim order). The same tree in the same order
  as the public class, hence its partition, ties included (on the same machine). The fastest on a
  CPU, where the matrix already is.
- ``"boruvka"``: Boruvka rounds in plain torch on the reachability's device, on squared values (the
  square root is monotone; only the N - 1 tree weights are rooted). Per round: mask the edges inside
  a component (in place), one row-wise min (torch documents the first index among equal values), two
  scatter-mins for each component's lightest outgoing edge, pointer jumping to merge, and one host
  sync (is every map down to one component?). Edges are ordered strictly by (weight, edge id
  ``min(i, j) * N + max(i, j)``): for a fixed row the id grows with the column, so the first-index
  argmin follows that order, the tree is the unique minimum spanning tree of that order, and no cycle
  can form. Mutual reachability with ``min_samples`` in the tens to hundreds gives every point many
  tied lightest edges (its core distance), so the first round leaves a handful of components and
  2-4 rounds finish a map. ``B`` maps go in one call (B x N x N, component ids global over the
  batch), in chunks of maps that fit a memory budget; the N - 1 edges of each map are sorted by
  (weight, edge id) on the device, and only they come to the host, for ``make_single_linkage``.
- ``"auto"`` (default): Prim on the CPU, Boruvka on any other device.

**The tie limit.** Both trees have the public class's weights, so the single-linkage hierarchy
(the clusters at every distance, as sets) is scikit-learn's. But where three or more pieces merge at
exactly the same mutual reachability, the order in which a binary dendrogram performs those merges
is arbitrary, and the condensed tree depends on it. scikit-learn's order comes from its Prim tree
and NumPy's unstable, SIMD ``argsort`` (so it can change with the CPU); the Prim path copies both;
Boruvka's comes from its (weight, edge id) order. With two or more tied pieces of at least
``min_cluster_size`` points, the points of the smaller tied pieces may then join either large piece
or be noise; every other point keeps its label. If some order can also join small tied pieces into
a side of ``min_cluster_size`` points (lattices: ties everywhere), any label may change.
The tests (``tests/helpers/hdbscan_ties.py``) find these points and assert Boruvka's labels equal
to the public class's everywhere else. On continuous FOCAL-like maps the tie is a stray point whose
core distance reaches two clusters at once (its own label is arbitrary); flat regions (duplicate
rows, at distance 0 here as in scikit-learn) add tied pieces, but a region of at least
``min_samples`` identical rows is never split by either path. Measured on 100 random small
FOCAL-like maps and 100 with flat regions (``benchmarks/results/clustering_speed.md``): the Prim
path equalled the public class on all 200; Boruvka differed on 8 and 24 of them, always only on
points the tie diagnostics flag (ties on 20 and 41 maps). Weights are equal to scikit-learn's up to
rounding (a matrix product, not its per-pair sums), so a near-tie could in principle still order
differently; none did in these 200 maps.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import torch
from sklearn.cluster._hdbscan._linkage import MST_edge_dtype, make_single_linkage
from sklearn.cluster._hdbscan._tree import tree_to_labels
from sklearn.cluster._hdbscan.hdbscan import _process_mst
from torch import Tensor

from focal_pl.clustering.methods import MST_METHODS, MstMethod

CPU_MEMORY_BUDGET = 512 << 20  # bytes of reachability per chunk of maps on the CPU


# ------------------------------------------------------------------------------------------ distances


def squared_distances(rows: Tensor) -> Tensor:
    """Squared euclidean distances (B x) N x N of (B x) N x C ``rows``, exactly symmetric: one matrix
    product ``|x|^2 + |y|^2 - 2 x.y``, then the pairs within rounding of each other recomputed
    exactly (0 for identical rows)."""
    batched = rows.dim() == 3
    rows = rows if batched else rows[None]
    squared = _squared_norms(rows)
    d2 = _gram_distances(rows, squared)
    near = d2 <= _tolerance(rows, squared)[:, :, None]
    _exact_near_pairs(rows, d2, (near.sum(-1) > 1))
    return d2 if batched else d2[0]


def squared_mutual_reachability(rows: Tensor, min_samples: int) -> Tensor:
    """``max(core_i, core_j, d_ij)^2`` for B x N x C ``rows`` (any device), B x N x N, exactly
    symmetric; core = the min_samples-th smallest distance of each point, itself included
    (scikit-learn's convention)."""
    return _reachability(rows, min_samples, root=False)


def mutual_reachability(rows: Tensor, min_samples: int) -> Tensor:
    """``max(core_i, core_j, d_ij)`` for (B x) N x C ``rows`` (any device), (B x) N x N. Computed on
    squared distances (the square root is monotone) and rooted once at the end."""
    batched = rows.dim() == 3
    reach = _reachability(rows if batched else rows[None], min_samples, root=True)
    return reach if batched else reach[0]


def _reachability(rows: Tensor, min_samples: int, root: bool) -> Tensor:
    squared = _squared_norms(rows)
    d2 = _gram_distances(rows, squared)
    k = max(min_samples, 2)  # the nearest other point too, to find near-duplicates for free
    smallest = d2.topk(k, dim=-1, largest=False, sorted=False).values
    flagged = (smallest <= _tolerance(rows, squared)[..., None]).sum(-1) > 1
    if _exact_near_pairs(rows, d2, flagged):
        smallest = d2.topk(k, dim=-1, largest=False, sorted=False).values
    core2 = (smallest.amax(-1) if min_samples == k else smallest.amin(-1)).clamp_min(0.0)
    torch.maximum(d2, core2[:, :, None], out=d2)  # max is commutative: stays symmetric
    torch.maximum(d2, core2[:, None, :], out=d2)
    return d2.sqrt_() if root else d2


def _squared_norms(rows: Tensor) -> Tensor:
    """|x|^2 of B x N x C rows, B x N; raises ValueError unless finite (a NaN or inf row makes it so)."""
    squared = (rows * rows).sum(-1)
    if not bool(torch.isfinite(squared).all()):
        raise ValueError("HDBSCAN needs finite features")
    return squared


def _gram_distances(rows: Tensor, squared: Tensor) -> Tensor:
    """Squared distances B x N x N, exactly symmetric, 0 on the diagonal: ``|x|^2 + |y|^2 - 2 x.y``
    by one batched matrix product, the upper triangle then mirrored. A matrix product is not bitwise
    symmetric; edge (i, j) must weigh the same from both ends for Boruvka's tie-breaking to stay
    consistent (hence cycle-free), and for core distances (taken along rows) to tie exactly with the
    edges that equal them, as in scikit-learn."""
    d2 = torch.baddbmm(squared[:, :, None], rows, rows.transpose(1, 2), alpha=-2.0)
    d2.add_(squared[:, None, :])
    _mirror(d2)
    d2.diagonal(dim1=1, dim2=2).zero_()
    return d2


def _mirror(matrix: Tensor) -> Tensor:
    """Copy the upper triangle of B x N x N ``matrix`` onto the lower one, in place, by strips of
    columns: on a CPU narrow ones through NumPy (a transposed copy that stays in cache, and no
    thread barrier per strip), on a GPU wide ones."""
    if matrix.device.type == "cpu" and matrix.dtype in (torch.float64, torch.float32):
        return _mirror_numpy(matrix)
    return _mirror_torch(matrix)


def _mirror_numpy(matrix: Tensor, width: int = 64) -> Tensor:
    n = matrix.shape[-1]
    for m in matrix.detach().numpy():
        for start in range(0, n, width):
            stop = min(n, start + width)
            square = m[start:stop, start:stop]
            upper = _upper_indices(stop - start)
            square.T[upper] = square[upper]
            if stop < n:
                m[stop:, start:stop] = m[start:stop, stop:].T
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


def symmetrize_(matrix: Tensor) -> Tensor:
    """Copy the upper triangle of (B x) N x N ``matrix`` onto the lower one, in place."""
    _mirror(matrix if matrix.dim() == 3 else matrix[None])
    return matrix


def _tolerance(rows: Tensor, squared: Tensor | None = None) -> Tensor:
    """Per row: squared distances below this may be rounding (C eps |x|^2, a dot product's bound)."""
    squared = (rows * rows).sum(-1) if squared is None else squared
    return 2.0 * rows.shape[-1] * torch.finfo(rows.dtype).eps * squared


def _exact_near_pairs(rows: Tensor, d2: Tensor, flagged: Tensor, pairs_per_chunk: int = 1 << 16) -> bool:
    """Recompute exactly the pairs among ``flagged`` rows (B x N bool) whose ``d2`` is within rounding:
    0 for identical rows, ``sum((x - y)^2)`` for the rest. Returns whether anything was flagged."""
    maps = flagged.any(-1).nonzero().flatten().tolist()  # one host sync per call
    for m in maps:
        index = flagged[m].nonzero().flatten()
        sub = rows[m, index]
        _, identity = torch.unique(sub, dim=0, return_inverse=True)
        same = identity[:, None] == identity[None, :]
        block = d2[m][index[:, None], index[None, :]]
        scale = _tolerance(sub)
        todo = (block <= torch.maximum(scale[:, None], scale[None, :])) & ~same
        block.masked_fill_(same, 0.0)
        first, second = todo.nonzero(as_tuple=True)
        for start in range(0, first.numel(), pairs_per_chunk):
            i, j = first[start : start + pairs_per_chunk], second[start : start + pairs_per_chunk]
            block[i, j] = (sub[i] - sub[j]).square().sum(-1)
        d2[m][index[:, None], index[None, :]] = block
    return bool(maps)


# ------------------------------------------------------------------------------------------ spanning trees


def boruvka_mst(
    reach: Tensor, overwrite: bool = False, block: int | None = None, symmetric: bool = False
) -> tuple[Tensor, Tensor]:
    """Minimum spanning trees of the complete graphs ``reach`` (B x) N x N, computed on its device.

    Returns (edge ids (B x) N-1 int64, weights (B x) N-1) on ``reach``'s device, sorted by (weight,
    edge id) there to spare the host; edge id ``min(i, j) * N + max(i, j)``. The tree is the unique
    minimum of the strict order (weight, edge id), where (i, j) weighs ``reach[min(i, j), max(i, j)]``
    (the upper triangle is copied onto the lower one first, unless ``symmetric`` says it is already
    so, as ``squared_mutual_reachability`` makes it). ``overwrite=True`` works in ``reach`` itself
    (its values are then garbage) instead of a copy; ``block`` bounds the elements of each masked
    slice (its bool mask is the only other large buffer). One host sync per round, at most
    ``ceil(log2 N)`` rounds (2-4 on mutual reachability).
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
    labels = torch.arange(b * n, device=device)  # global node ids, also the component labels
    comp = labels.clone()  # the label of each node's component
    offsets = (torch.arange(b, device=device) * n)[:, None]
    local = torch.arange(n, device=device).expand(b, n)
    big = torch.iinfo(torch.int64).max
    slot_edge = torch.full((b * n,), -1, dtype=torch.int64, device=device)  # the edge that merged a label
    slot_weight = torch.full((b * n,), math.inf, dtype=dtype, device=device)
    mask_buffer = torch.empty(max(n, min(block, b * n * n)), dtype=torch.bool, device=device)
    work.diagonal(dim1=1, dim2=2).fill_(math.inf)
    pending, components, rounds = (list(range(b)) if n > 1 else []), n, 0
    while pending:
        rounds += 1
        if rounds > math.ceil(math.log2(n)) + 1:
            raise RuntimeError("Boruvka did not converge: is the reachability finite?")
        # 1. each row's lightest edge leaving its component: mask the component (in place), row min
        local_comp = comp.view(b, n) - offsets
        weight = torch.full((b, n), math.inf, dtype=dtype, device=device)
        target = torch.zeros((b, n), dtype=torch.int64, device=device)
        for maps, rows in _blocks(pending, n, block):
            part = work[maps, rows]
            if rounds > 1:  # in the first round every node is its own component: the diagonal
                inside = mask_buffer[: part.numel()].view(part.shape)
                torch.eq(local_comp[maps, rows, None], local_comp[maps, None, :], out=inside)
                part.masked_fill_(inside, math.inf)
            weight[maps, rows], target[maps, rows] = part.min(-1)
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
    edges = edges.gather(1, order)
    return (edges[0], weights[0]) if single else (edges, weights)


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


def prim_mst(reach: Tensor | np.ndarray) -> np.ndarray:
    """Prim over one N x N mutual reachability on the host, as the public ``HDBSCAN`` runs it
    (scikit-learn's ``mst_from_data_matrix``, here on a precomputed matrix): start at node 0, add
    the first node (lowest index) of least reachability, each edge from the first tree node that
    reached it. Returns the N-1 edges in Prim order (``MST_edge_dtype``: current_node, next_node,
    distance), the order ``_process_mst`` expects. A loop of N vector steps (faster than
    scikit-learn's own ``mst_from_mutual_reachability``, which also records chain edges
    (previous node, next node) rather than the tree's edges, and so splits tied duplicates)."""
    matrix = torch.as_tensor(reach).to("cpu", torch.float64).contiguous().numpy()
    n = matrix.shape[0]
    reach_min = np.full(n, np.inf)  # each outside node's least reachability from the tree
    source = np.zeros(n, dtype=np.int64)  # and the first tree node that reached it
    outside = np.ones(n, dtype=bool)
    better = np.empty(n, dtype=bool)
    mst = np.empty(n - 1, dtype=MST_edge_dtype)
    current, following, distance = (np.empty(n - 1, np.int64), np.empty(n - 1, np.int64),
                                    np.empty(n - 1, np.float64))
    less, both, copy, argmin = np.less, np.logical_and, np.copyto, np.argmin
    node = 0
    for step in range(n - 1):
        outside[node] = False
        row = matrix[node]
        less(row, reach_min, out=better)
        both(better, outside, out=better)
        copy(reach_min, row, where=better)
        copy(source, node, where=better)
        node = int(argmin(reach_min))
        current[step], following[step], distance[step] = source[node], node, reach_min[node]
        reach_min[node] = np.inf
    mst["current_node"], mst["next_node"], mst["distance"] = current, following, distance
    return mst


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
    (``presorted``: they already are, as ``boruvka_mst`` returns them)."""
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


def resolve_mst(mst: MstMethod, device: str | torch.device) -> Literal["prim", "boruvka"]:
    """``auto``: Prim on the CPU (the matrix is already on the host), Boruvka on any other device."""
    if mst not in MST_METHODS:
        raise ValueError(f"mst must be one of {', '.join(MST_METHODS)}, got {mst!r}")
    if mst == "auto":
        return "prim" if torch.device(device).type == "cpu" else "boruvka"
    return mst


def hdbscan_labels(
    rows: np.ndarray | Tensor,
    min_cluster_size: int,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    mst: MstMethod = "auto",
) -> np.ndarray:
    """Labels (-1 = noise) of ``rows`` N x C, equal to ``sklearn.cluster.HDBSCAN(min_cluster_size,
    min_samples, allow_single_cluster=...)`` with the euclidean metric, up to the tie limit (module
    docstring).

    ``device``: where distances and tree are computed (None: where ``rows`` are; NumPy: the CPU).
    ``dtype=torch.float64`` (default) matches scikit-learn's double-precision distances; float32 is
    faster but near-ties may then be ordered differently. ``mst``: prim, boruvka or auto.
    """
    data = torch.as_tensor(rows)
    if data.dim() != 2:
        raise ValueError(f"rows must be N x C, got shape {tuple(data.shape)}")
    return hdbscan_labels_batch(data[None], min_cluster_size, min_samples, allow_single_cluster,
                                cluster_selection_method, device, dtype, mst)[0]


def hdbscan_labels_batch(
    rows: np.ndarray | Tensor,
    min_cluster_size: int,
    min_samples: int | None = None,
    allow_single_cluster: bool = False,
    cluster_selection_method: str = "eom",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    mst: MstMethod = "auto",
    memory_budget: int | None = None,
) -> list[np.ndarray]:
    """``hdbscan_labels`` of every map of ``rows`` B x N x C, the device work batched: the B x N x N
    reachability and the Boruvka forest of a chunk of maps at once. A chunk holds as many maps as
    their reachability fits in ``memory_budget`` bytes (None: half the free memory of a CUDA device,
    ``CPU_MEMORY_BUDGET`` on the CPU), one map at least. One int64 label array per map, on the host."""
    data = torch.as_tensor(rows)
    if data.dim() != 3:
        raise ValueError(f"rows must be B x N x C, got shape {tuple(data.shape)}")
    device = data.device if device is None else torch.device(device)
    method = resolve_mst(mst, device)
    b, n = data.shape[:2]
    samples = min_cluster_size if min_samples is None else min_samples
    if n < 2 or samples > n or min_cluster_size > n:
        return [np.full(n, -1, dtype=np.int64) for _ in range(b)]
    if min_samples is not None and min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    per_map = n * n * torch.empty((), dtype=dtype).element_size()
    chunk = max(1, _memory_budget(device, memory_budget) // per_map)
    out = []
    for start in range(0, b, chunk):
        part = data[start : start + chunk].to(device=device, dtype=dtype)
        reach2 = squared_mutual_reachability(part, samples)
        del part
        if method == "prim":
            reach = reach2.sqrt_()
            out += [_labels(_process_mst(prim_mst(r)), min_cluster_size, allow_single_cluster,
                            cluster_selection_method) for r in reach]
            continue
        edges, weights2 = boruvka_mst(reach2, overwrite=True, symmetric=True)
        del reach2
        edges = edges.cpu().numpy()
        weights = weights2.sqrt().to("cpu", torch.float64).numpy()
        out += [labels_from_mst(e, w, n, min_cluster_size, allow_single_cluster, cluster_selection_method, True)
                for e, w in zip(edges, weights)]
    return out


def _memory_budget(device: torch.device, memory_budget: int | None) -> int:
    if memory_budget is not None:
        return int(memory_budget)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return CPU_MEMORY_BUDGET
