"""Exact ties in mutual reachability: what holds, and the limit (fast_hdbscan's module docstring).

Where three or more pieces merge at exactly the same mutual reachability, a binary dendrogram's
order among those merges is arbitrary (scikit-learn's comes from its Prim order and NumPy's
unstable argsort). Asserted here:
- the Prim path equals scikit-learn's public class, ties included (it is the public class's Prim);
- Boruvka's tree has the same weights, bit for bit, so the single-linkage hierarchy (as sets) is the same;
- Boruvka's labels equal scikit-learn's on every point that ``tie_ambiguity`` does not flag, unless it
  reports that tied small pieces could add up to a cluster (then only the points above are asserted);
- a group of at least ``min_samples`` identical rows (a flat image region) is never split.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.feature_maps import focal_like, same_partition
from helpers.hdbscan_ties import ambiguous_points, tie_ambiguity
from sklearn.cluster import HDBSCAN

from focal_pl.clustering.fast_hdbscan import boruvka_tree, hdbscan_labels


def boruvka_edges(rows: np.ndarray, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    edges, weights = boruvka_tree(torch.from_numpy(rows), min_samples)
    return edges.numpy(), weights.numpy()


def flat_regions(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A FOCAL-like map where a few flat regions repeat one feature vector exactly."""
    g = np.random.default_rng(seed)
    rows = focal_like(("forged", "two_forged", "authentic")[seed % 3], 1200, 32, seed)
    sizes = g.integers(10, 150, size=3)
    groups = np.split(g.choice(len(rows), int(sizes.sum()), replace=False), np.cumsum(sizes)[:-1])
    for group in groups:
        rows[group] = rows[group[0]]
    return rows, groups


def lattice(seed: int) -> np.ndarray:
    """Points on an integer grid: every distance is the root of an integer, ties everywhere."""
    g = np.random.default_rng(seed)
    parts = [g.integers(0, 6, size=(500, 3)), g.integers(0, 4, size=(120, 3)) + 9, g.integers(0, 20, size=(25, 3))]
    return np.concatenate(parts).astype(np.float32)


def check_against_scikit_learn(rows: np.ndarray, min_cluster_size: int, min_samples: int | None,
                               single: bool) -> bool:
    """The assertions common to every tie case; returns whether Boruvka's partition differs."""
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, allow_single_cluster=single,
                    copy=True).fit(rows)
    reference = model.labels_
    prim = hdbscan_labels(rows, min_cluster_size, min_samples, single, mst="prim")
    assert same_partition(reference, prim)
    _, weights = boruvka_edges(rows, min_samples or min_cluster_size)
    hierarchy = np.sort(model._single_linkage_tree_["value"])
    assert np.array_equal(weights, hierarchy)  # scikit-learn's own weights, sorted: bit for bit
    boruvka = hdbscan_labels(rows, min_cluster_size, min_samples, single, mst="boruvka")
    ambiguous, regroup = ambiguous_points(rows, min_cluster_size, min_samples)
    if not regroup:
        assert same_partition(reference, boruvka, ~ambiguous)
    return not same_partition(reference, boruvka)


@pytest.mark.parametrize("seed", range(4))
def test_flat_regions(seed):
    rows, groups = flat_regions(seed)
    size, samples, single = (40, 60, 30, 50)[seed], (None, 10, 5, None)[seed], seed == 3
    check_against_scikit_learn(rows, size, samples, single)
    reference = HDBSCAN(min_cluster_size=size, min_samples=samples, allow_single_cluster=single,
                        copy=True).fit_predict(rows)
    for labels in (reference, hdbscan_labels(rows, size, samples, single, mst="boruvka"),
                   hdbscan_labels(rows, size, samples, single, mst="prim")):
        for group in groups:
            if len(group) >= (samples or size):  # core distance 0: the whole region merges at 0
                assert len(set(labels[group].tolist())) == 1


@pytest.mark.parametrize("seed", range(3))
def test_integer_lattice(seed):
    rows = lattice(seed)
    check_against_scikit_learn(rows, (20, 40, 30)[seed], (None, 5, 10)[seed], seed == 2)


def test_a_stray_point_tied_between_two_clusters_is_the_limit():
    """Two clusters and a point whose core distance reaches both: the edges point-A and point-B
    weigh its core distance exactly, a three-way merge. Its label depends on the dendrogram's
    order (for Boruvka: on which cluster holds the lower row index), everything else does not."""
    g = np.random.default_rng(0)
    a, b = g.normal(size=(30, 2)) * 0.5, g.normal(size=(30, 2)) * 0.5 + [10.0, 0.0]
    middle = np.array([[5.0, 0.0]])
    for first, second in ((a, b), (b, a)):
        rows = np.concatenate([middle, first, second]).astype(np.float32)
        reference = HDBSCAN(min_cluster_size=10, min_samples=5, copy=True).fit_predict(rows)
        edges, weights = boruvka_edges(rows, 5)
        ambiguous, regroup = tie_ambiguity(edges, weights, len(rows), 10)
        assert ambiguous.nonzero()[0].tolist() == [0] and not regroup
        boruvka = hdbscan_labels(rows, 10, 5, mst="boruvka")
        assert same_partition(reference, boruvka, slice(1, None))
        assert reference[0] in (reference[1], reference[31]) and reference[0] != -1
        assert boruvka[0] == boruvka[1]  # with the cluster of the lower row index
        assert same_partition(reference, hdbscan_labels(rows, 10, 5, mst="prim"))
