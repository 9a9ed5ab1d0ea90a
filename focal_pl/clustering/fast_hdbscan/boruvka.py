"""Boruvka's minimum spanning tree in plain torch on any device, by chunks of rows: no N x N matrix
is ever held (``boruvka_tree``; HRNet's 256 x 256 maps).

Per round and chunk: the float32 bounds of the chunk's rows, the edges inside a component masked,
each row's least upper bound, then its lightest edge out of its component among the certified pairs
(``min``: torch documents the first index among equal values) and the few uncertain pairs not above
that bound (computed exactly, two scatter-mins); then per component its lightest edge (two
scatter-mins), pointer jumping to merge, one host sync (is every map down to one component?). Edges
are ordered strictly by (weight, edge id ``min(i, j) * N + max(i, j)``): for a fixed row the id grows
with the column, so the first-index minimum follows that order, the tree is the unique minimum
spanning tree of that order, and no cycle can form (exact weights are symmetric by construction). Any
chunking gives the same tree, bit for bit. Mutual reachability with ``min_samples`` in the tens to
hundreds gives every point many tied lightest edges (its core distance), so 2-4 rounds finish a map.

Peak memory of B maps of N x C (rows of ``e`` bytes), ``R`` rows per chunk: ``CHUNK_BYTES_PER_PAIR *
R * N`` (26: the chunk's float32 bounds, two float64 and three bool R x N buffers, 23 bytes, and
slack) ``+ B N C (e + 8)`` (the rows, their centred float32 copy, the matrix product's packing) ``+
200 B N`` (per-point vectors) ``+ EXACT_BYTES`` (32 MiB at most, for exact sums); ``chunk_rows``
sizes ``R`` to the memory budget (measured on the CPU: ``benchmarks/results/clustering_speed.md``; on
a GPU the test asserts the budget). For N = 65,536 (256 x 256), C = 256, float32: 1.6 MiB per row of
a chunk and 237 MiB fixed, so 6.7 GiB at R = 4096 and 1.9 GiB at R = 1024 (a 65,536^2 float32 matrix
alone would be 16 GiB). The default on a GPU.

``boruvka_mst`` runs the same rounds on a given (B x) N x N matrix."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.fast_hdbscan.arrays import _mirror
from focal_pl.clustering.fast_hdbscan.bounds import _Bounds, _lower_rows, _round_down, _thresholds
from focal_pl.clustering.fast_hdbscan.core_distance import _chunked_core_squares
from focal_pl.clustering.fast_hdbscan.exact import EXACT_BYTES, _exact_torch, _sqrt64, _square_keys

CPU_MEMORY_BUDGET = 2 << 30  # bytes: Prim's N x N float32 lower bounds (up to N ~ 23,000), Boruvka's chunks
CHUNK_BYTES_PER_PAIR = 26  # Boruvka's peak bytes per (row of a chunk, point) pair: 23 live, and slack


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


def _memory_budget(device: torch.device, memory_budget: int | None) -> int:
    if memory_budget is not None:
        return int(memory_budget)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return CPU_MEMORY_BUDGET


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
