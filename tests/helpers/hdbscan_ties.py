"""Tie diagnostics for the exact HDBSCAN's tests and benchmark (``focal_pl.clustering.fast_hdbscan``,
its module docstring: the tie limit). Where three or more pieces merge at exactly the same mutual
reachability, the binary order of those merges is arbitrary; these find the points whose label may
depend on it. Host-side Python loops, for tests and benchmarks only (moved out of the package, which
never used them)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.fast_hdbscan import boruvka_tree, prim_tree


def tie_ambiguity(
    edges: np.ndarray, weights: np.ndarray, n: int, min_cluster_size: int, rtol: float = 0.0
) -> tuple[np.ndarray, bool]:
    """Which points' labels may depend on the order of tied merges, for this spanning tree sorted
    in any order among equal weights (``fast_hdbscan``: the tie limit).

    Walks the tree's edges by weight. Edges of one weight (within ``rtol``, relative) that join three
    or more pieces (components of the lighter edges) into one make a multi-way merge, whose binary
    order is arbitrary. There, with two or more pieces of at least ``min_cluster_size`` points, the
    points of the smaller pieces may go to either large piece or to noise; and if some order of
    these tied edges can join small pieces into a side of ``min_cluster_size`` points facing another
    side as large, a cluster can appear or vanish and any label may change. Returns (ambiguous bool
    N: the points of those smaller pieces, whether clusters may change). Every other point's label
    is the same in every order. A host-side diagnostic (Python loops) for tests and benchmarks.
    """
    edges, weights = np.asarray(edges, np.int64), np.asarray(weights, np.float64)
    order = np.lexsort((edges, weights))
    edges, weights = edges[order], weights[order]
    root = list(range(n))
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    ambiguous = np.zeros(n, dtype=bool)
    changes_clusters, start = False, 0

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    while start < len(edges):
        stop = start + 1
        while stop < len(edges) and weights[stop] - weights[start] <= rtol * abs(weights[start]):
            stop += 1
        pairs = [(find(int(e // n)), find(int(e % n))) for e in edges[start:stop]]
        if len(pairs) > 1:
            size = {p: len(members[p]) for pair in pairs for p in pair}
            for pieces, tree in _merge_groups(pairs):
                small = [p for p in pieces if size[p] < min_cluster_size]
                if len(pieces) < 3 or not small:
                    continue
                regroup = _can_regroup(tree, size, min_cluster_size)
                if regroup or len(pieces) - len(small) >= 2:
                    for p in small:
                        ambiguous[members[p]] = True
                changes_clusters |= regroup
        for a, b in pairs:  # then merge, as single linkage does (smaller into larger)
            a, b = find(a), find(b)
            if len(members[a]) < len(members[b]):
                a, b = b, a
            root[b] = a
            members[a] += members.pop(b)
        start = stop
    return ambiguous, changes_clusters


def ambiguous_points(
    rows: np.ndarray | Tensor, min_cluster_size: int, min_samples: int | None = None, rtol: float = 0.0
) -> tuple[np.ndarray, bool]:
    """Where the Boruvka path's labels and the Prim path's (the public class's) may differ on
    ``rows`` N x C: ``tie_ambiguity`` of both trees, points and flags joined. Both trees carry
    scikit-learn's own weights bit for bit, so only exact ties count (``rtol=0``)."""
    samples = min_cluster_size if min_samples is None else min_samples
    data = torch.as_tensor(rows).cpu()
    n = len(data)
    prim = prim_tree(data.numpy(), samples)
    i, j = prim["current_node"], prim["next_node"]
    edges, weights = boruvka_tree(data, samples)
    found = [tie_ambiguity(edges.numpy(), weights.numpy(), n, min_cluster_size, rtol),
             tie_ambiguity(np.minimum(i, j) * n + np.maximum(i, j), prim["distance"], n, min_cluster_size, rtol)]
    return found[0][0] | found[1][0], found[0][1] or found[1][1]


def _merge_groups(pairs: list[tuple[int, int]]) -> list[tuple[list[int], dict[int, list[int]]]]:
    """The connected groups of pieces joined by tied edges: (pieces, adjacency of the group's tree)."""
    adjacency: dict[int, list[int]] = {}
    for a, b in pairs:
        adjacency.setdefault(a, []).append(b)
        adjacency.setdefault(b, []).append(a)
    seen: set[int] = set()
    groups = []
    for start in adjacency:
        if start in seen:
            continue
        seen.add(start)
        stack, pieces = [start], []
        while stack:
            piece = stack.pop()
            pieces.append(piece)
            for other in adjacency[piece]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        groups.append((pieces, {p: adjacency[p] for p in pieces}))
    return groups


def _can_regroup(tree: dict[int, list[int]], size: dict[int, int], min_cluster_size: int) -> bool:
    """Can some order of these tied edges (a tree over pieces) merge small pieces alone into a side
    of ``min_cluster_size`` points while the other side of that merge is as large? For the edge
    (parent, child) of the rooted tree, the largest all-small side around the child is the child's
    all-small subtree; around the parent, its all-small component without the child's branch."""
    small = {p: size[p] < min_cluster_size for p in tree}
    rooted, parent, visit = next(iter(tree)), {}, []
    parent[rooted] = None
    stack = [rooted]
    while stack:
        piece = stack.pop()
        visit.append(piece)
        for other in tree[piece]:
            if other != parent[piece]:
                parent[other] = piece
                stack.append(other)
    subtree = dict(size)
    small_subtree = {p: size[p] if small[p] else 0 for p in tree}
    for piece in reversed(visit[1:]):  # children before parents
        subtree[parent[piece]] += subtree[piece]
        if small[parent[piece]] and small[piece]:
            small_subtree[parent[piece]] += small_subtree[piece]
    component = {}  # the all-small component's size, through parents
    for piece in visit:
        up = parent[piece]
        if small[piece] and up is not None and small[up]:
            component[piece] = component[up]
        else:
            component[piece] = small_subtree[piece]
    total = subtree[rooted]
    for child in visit[1:]:
        up = parent[child]
        if small[child] and small_subtree[child] >= min_cluster_size and total - subtree[child] >= min_cluster_size:
            return True
        if small[up] and subtree[child] >= min_cluster_size:
            around = component[up] - (small_subtree[child] if small[child] else 0)
            if around >= min_cluster_size:
                return True
    return False
