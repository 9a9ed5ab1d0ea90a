"""Exact HDBSCAN, fast: scikit-learn's own distances, found without computing most of them exactly.

HDBSCAN is core distances (the ``min_samples``-th smallest distance, the point itself included)
-> mutual reachability ``max(core_i, core_j, d_ij)`` -> minimum spanning tree -> single linkage ->
condensed tree -> clusters. scikit-learn's public ``HDBSCAN`` on 256-d features builds a KD-tree
that does not prune in 256 dimensions and computes every distance in scalar Cython (3-4 s per
64 x 64 map on 2 cores). Here most distances are decided by float32 bounds and only the few that
decide something are computed exactly, as scikit-learn does; the single linkage and cluster
selection are scikit-learn's own routines. The tests compare labels, noise included, with the public
class. One job per module:

- ``exact``: scikit-learn's distances bit for bit, and the square keys the trees compare.
- ``bounds``: every squared distance within a rigorous bound, from one float32 matrix product.
- ``core_distance``: scikit-learn's core distances, bit for bit, from the bounds.
- ``prim``: scikit-learn's own Prim tree, on the host (4 N^2 bytes; the default on the CPU while
  they fit the memory budget).
- ``boruvka``: Boruvka's rounds in torch on any device, by chunks of rows, no N x N matrix (HRNet's
  256 x 256 maps; the default on a GPU).
- ``sklearn_tree``: scikit-learn's single linkage and cluster selection, the one module that imports
  its private code.
- ``labels``: the entry points, ``hdbscan_labels`` and ``hdbscan_labels_batch`` (``mst="auto"``:
  Prim on the CPU while its matrix fits the budget, Boruvka otherwise).
- ``arrays``: host threads, sparse masks, mirrored triangles.

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
never split by either path (``benchmarks/results/clustering_speed.md`` counts both).

Importing this package loads scikit-learn's private tree code: ``focal_pl.clustering`` imports it
lazily, on the first HDBSCAN call of the torch backend."""

from focal_pl.clustering.fast_hdbscan.boruvka import (
    CHUNK_BYTES_PER_PAIR,
    CPU_MEMORY_BUDGET,
    boruvka_mst,
    boruvka_tree,
    chunk_rows,
)
from focal_pl.clustering.fast_hdbscan.core_distance import core_distances
from focal_pl.clustering.fast_hdbscan.exact import EXACT_BYTES, exact_distances
from focal_pl.clustering.fast_hdbscan.labels import hdbscan_labels, hdbscan_labels_batch, resolve_mst
from focal_pl.clustering.fast_hdbscan.prim import prim_tree
from focal_pl.clustering.fast_hdbscan.sklearn_tree import labels_from_mst
from focal_pl.clustering.methods import MST_METHODS, MstMethod

__all__ = [
    "CHUNK_BYTES_PER_PAIR",
    "CPU_MEMORY_BUDGET",
    "EXACT_BYTES",
    "MST_METHODS",
    "MstMethod",
    "boruvka_mst",
    "boruvka_tree",
    "chunk_rows",
    "core_distances",
    "exact_distances",
    "hdbscan_labels",
    "hdbscan_labels_batch",
    "labels_from_mst",
    "prim_tree",
    "resolve_mst",
]
