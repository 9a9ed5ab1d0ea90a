"""scikit-learn's own single linkage and cluster selection: the one module that imports its private
HDBSCAN code (``PRIVATE``; ``pyproject.toml`` pins scikit-learn below its next minor release, and
``tests/test_fast_hdbscan.py`` fails naming what moved if an upgrade moves one).

From a spanning tree to labels exactly as scikit-learn's public ``HDBSCAN`` does: Prim's tree through
its ``_process_mst`` (its own ``argsort`` of the weights, in Prim order), or a tree sorted by
(weight, edge id) straight to ``make_single_linkage``; then ``tree_to_labels`` (condensed tree,
selection, labels)."""

from __future__ import annotations

import numpy as np

# (module, name) of every private scikit-learn object used, for the test that checks they still exist
PRIVATE: tuple[tuple[str, str], ...] = (
    ("sklearn.cluster._hdbscan._linkage", "MST_edge_dtype"),
    ("sklearn.cluster._hdbscan._linkage", "make_single_linkage"),
    ("sklearn.cluster._hdbscan._tree", "tree_to_labels"),
    ("sklearn.cluster._hdbscan.hdbscan", "_process_mst"),
)

try:
    from sklearn.cluster._hdbscan._linkage import MST_edge_dtype, make_single_linkage
    from sklearn.cluster._hdbscan._tree import tree_to_labels
    from sklearn.cluster._hdbscan.hdbscan import _process_mst
except ImportError as error:  # caught by clustering.algorithms: it warns and uses the public class
    import sklearn

    raise ImportError(
        f"scikit-learn {sklearn.__version__} moved its private HDBSCAN tree code ({error}): "
        "focal_pl/clustering/fast_hdbscan/sklearn_tree.py must follow (backend='sklearn' works meanwhile)"
    ) from error


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


def labels_from_prim_tree(mst: np.ndarray, min_cluster_size: int, allow_single_cluster: bool = False,
                          cluster_selection_method: str = "eom") -> np.ndarray:
    """HDBSCAN labels (-1 = noise) from a Prim tree in Prim order (``prim_tree``), as scikit-learn's
    public class takes them: its ``_process_mst`` (NumPy's default, unstable ``argsort`` of the weights, then single
    linkage) first."""
    return _labels(_process_mst(mst), min_cluster_size, allow_single_cluster, cluster_selection_method)


def _labels(tree: np.ndarray, min_cluster_size: int, allow_single_cluster: bool, method: str) -> np.ndarray:
    labels, _ = tree_to_labels(tree, min_cluster_size, method, allow_single_cluster, 0.0, None)
    return np.asarray(labels, dtype=np.int64)
