"""The fast exact HDBSCAN gives scikit-learn's partition, noise included (adjusted Rand index 1), by
both spanning trees: scikit-learn-style Prim on the host and Boruvka in torch (run here on the CPU;
tests/test_hdbscan_ties.py covers exact ties, the CUDA tests at the end need a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.hdbscan_ties import ambiguous_points
from sklearn.cluster import HDBSCAN
from sklearn.metrics import adjusted_rand_score

from focal_pl.clustering import Clusterer
from focal_pl.clustering.fast_hdbscan import (
    _mirror_numpy,
    _mirror_torch,
    boruvka_mst,
    hdbscan_labels,
    hdbscan_labels_batch,
    labels_from_mst,
    mutual_reachability,
    prim_mst,
    resolve_mst,
    squared_distances,
    squared_mutual_reachability,
    symmetrize_,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def focal_like(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    """Unit features like a trained extractor's: one pristine cluster, forged ones, stray points."""
    g = np.random.default_rng(seed)
    a, b, c = g.normal(size=(3, dim))
    outliers = g.normal(size=(n // 50, dim)) * 2.0
    if kind == "forged":
        parts = [a + 0.35 * g.normal(size=(n * 8 // 10, dim)), b + 0.3 * g.normal(size=(n // 10, dim))]
    elif kind == "two_forged":
        parts = [a + 0.35 * g.normal(size=(n * 7 // 10, dim)), b + 0.3 * g.normal(size=(n // 8, dim)),
                 c + 0.5 * g.normal(size=(n // 12, dim))]
    else:  # authentic-like: one cluster
        parts = [a + 0.35 * g.normal(size=(n - n // 50, dim))]
    rows = np.concatenate([*parts, outliers])
    rows = rows[g.permutation(len(rows))]
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def same_partition(a: np.ndarray, b: np.ndarray, where: np.ndarray | slice = slice(None)) -> bool:
    """The same clusters (up to their names) and the same noise points, on ``where``."""
    a, b = a[where], b[where]
    return adjusted_rand_score(a, b) == 1.0 and np.array_equal(a == -1, b == -1)


CASES = [
    ("forged", 1500, 64, dict(min_cluster_size=60)),
    ("two_forged", 1500, 64, dict(min_cluster_size=60)),
    ("two_forged", 1500, 64, dict(min_cluster_size=40, min_samples=8)),
    ("authentic", 1500, 64, dict(min_cluster_size=60)),
    ("authentic", 1500, 64, dict(min_cluster_size=60, allow_single_cluster=True)),
    ("forged", 1500, 64, dict(min_cluster_size=60, allow_single_cluster=True)),
    ("forged", 4096, 256, dict(min_cluster_size=200)),  # the paper's map: 64 x 64 x 256, min 200
]


@pytest.mark.parametrize("kind,n,dim,params", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_partition_equals_scikit_learn_noise_included(kind, n, dim, params, seed):
    if n == 4096 and seed == 1:
        pytest.skip("one full-size case is enough (scikit-learn takes seconds on it)")
    rows = focal_like(kind, n, dim, seed)
    size, samples, single = params["min_cluster_size"], params.get("min_samples"), params.get("allow_single_cluster",
                                                                                              False)
    reference = HDBSCAN(copy=True, **params).fit_predict(rows)
    assert (reference == -1).any() or kind == "authentic"
    prim = hdbscan_labels(rows, size, samples, single, mst="prim")
    assert same_partition(reference, prim)  # Prim as the public class runs it: equal, ties included
    assert np.array_equal(hdbscan_labels(rows, size, samples, single), prim)  # auto = Prim on the CPU
    boruvka = hdbscan_labels(rows, size, samples, single, mst="boruvka")
    # Boruvka: equal but for the label of a stray point whose core distance reaches two clusters at
    # once (a tied three-way merge: its label is arbitrary, scikit-learn's included)
    ambiguous, regroup = ambiguous_points(rows, size, samples)
    assert not regroup and ambiguous.sum() <= 2
    assert same_partition(reference, boruvka, ~ambiguous)
    if not ambiguous.any():
        assert same_partition(reference, boruvka)


def test_most_focal_like_maps_have_no_tie_and_boruvka_then_equals_scikit_learn():
    """Over these small maps (kind, seed), the ties that can change a label are the exception."""
    untied = 0
    for seed in range(6):
        rows = focal_like(("forged", "two_forged", "authentic")[seed % 3], 600, 32, 40 + seed)
        ambiguous, _ = ambiguous_points(rows, 25, None)
        if ambiguous.any():
            continue
        untied += 1
        reference = HDBSCAN(min_cluster_size=25, copy=True).fit_predict(rows)
        assert same_partition(reference, hdbscan_labels(rows, 25, mst="boruvka"))
    assert untied >= 4


def test_mutual_reachability_matches_its_definition():
    rows = torch.from_numpy(focal_like("forged", 200, 16, 3)).double()
    reach = mutual_reachability(rows, 5)
    distances = torch.cdist(rows, rows, compute_mode="donot_use_mm_for_euclid_dist")
    core = distances.sort(1).values[:, 4]  # the 5th smallest, the point itself included
    expected = torch.maximum(distances, torch.maximum(core[:, None], core[None, :]))
    assert torch.allclose(reach, expected, atol=1e-10)
    batched = mutual_reachability(torch.stack([rows, rows.flip(0)]), 5)
    assert torch.allclose(batched[0], reach) and torch.allclose(batched[1], reach.flip(0, 1))


def test_duplicate_and_near_duplicate_rows_get_exact_distances():
    """|x|^2 + |y|^2 - 2 x.y cancels for (near-)duplicates; those pairs are recomputed exactly."""
    g = torch.Generator().manual_seed(0)
    rows = torch.nn.functional.normalize(torch.randn(300, 64, generator=g, dtype=torch.float64), dim=1)
    rows[100:160] = rows[7]  # a flat region: exact duplicates
    rows[200] = rows[9] + 1e-9  # a near-duplicate
    d2 = squared_distances(rows)
    assert (d2[7, 100:160] == 0).all() and (d2[100:160, 100:160] == 0).all()
    assert d2[200, 9] == d2[9, 200] == (rows[200] - rows[9]).square().sum()
    assert (d2 >= 0).all() and (d2.diagonal() == 0).all()
    reach = squared_mutual_reachability(rows[None], 20)[0]
    assert (reach[100:160, 100:160] == 0).all()  # 61 copies: a core distance of 0
    assert reach[7, 8] > 0


def kruskal(weights: np.ndarray) -> set[int]:
    """The unique minimum spanning tree of the order (weight, edge id), by Kruskal: edge ids."""
    n = len(weights)
    i, j = np.triu_indices(n, 1)
    ids, w = i * n + j, weights[i, j]
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    tree = set()
    for k in np.lexsort((ids, w)):
        a, b = find(int(i[k])), find(int(j[k]))
        if a != b:
            parent[a] = b
            tree.add(int(ids[k]))
    return tree


@pytest.mark.parametrize("block", [None, 97, 3 * 50 * 50])
def test_boruvka_finds_the_unique_minimum_spanning_tree_of_the_order_weight_then_edge_id(block):
    """Integer weights: many ties. The strict order (weight, edge id) has one minimum spanning tree;
    Boruvka's consistent tie-breaking must find exactly it (no cycle, no missing edge), per map."""
    g = np.random.default_rng(1)
    maps = []
    for _ in range(5):
        w = g.integers(1, 6, size=(50, 50)).astype(np.float64)
        maps.append(np.minimum(w, w.T))
    reach = torch.from_numpy(np.stack(maps))
    before = reach.clone()
    edges, weights = boruvka_mst(reach, block=block)
    assert torch.equal(reach, before)  # not overwritten unless asked
    assert edges.shape == weights.shape == (5, 49)
    for m in range(5):
        assert set(edges[m].tolist()) == kruskal(maps[m])
        i, j = np.divmod(edges[m].numpy(), 50)
        assert np.array_equal(weights[m].numpy(), maps[m][i, j])
        assert np.array_equal(np.lexsort((edges[m].numpy(), weights[m].numpy())), np.arange(49))  # sorted
    single, _ = boruvka_mst(reach[2])
    assert set(single.tolist()) == kruskal(maps[2])


def test_boruvka_reads_the_upper_triangle_of_an_unsymmetric_matrix():
    """A matrix product is not exactly symmetric: Boruvka must weigh (i, j) the same from both ends,
    or its tie-breaking is inconsistent and a cycle can form."""
    g = torch.Generator().manual_seed(3)
    upper = torch.triu(torch.randint(1, 4, (3, 40, 40), generator=g).double(), 1)
    symmetric = upper + upper.mT
    skewed = symmetric - torch.tril(torch.rand(3, 40, 40, generator=g, dtype=torch.float64), -1)
    edges, weights = boruvka_mst(skewed)
    for m in range(3):
        assert set(edges[m].tolist()) == kruskal(symmetric[m].numpy())
    assert torch.equal(symmetrize_(skewed.clone()), symmetric)
    for width in (7, 40, 64):  # the GPU's way (torch strips) and the CPU's (NumPy), any strip width
        assert torch.equal(_mirror_torch(skewed.clone(), width), symmetric)
        assert torch.equal(_mirror_numpy(skewed.clone(), width), symmetric)


def test_boruvka_and_prim_trees_have_the_same_weights():
    rows = torch.from_numpy(focal_like("two_forged", 700, 16, 2)).double()
    reach = mutual_reachability(rows, 10)
    edges, weights = boruvka_mst(reach)
    prim = prim_mst(reach)
    assert np.allclose(np.sort(weights.numpy()), np.sort(prim["distance"]), rtol=1e-13, atol=0)
    assert len(set(edges.tolist())) == len(rows) - 1


def test_batched_labels_equal_one_map_at_a_time_in_any_chunking():
    rows = np.stack([focal_like(kind, 900, 32, s)[:820] for s, kind in enumerate(["forged", "two_forged",
                                                                                   "authentic", "forged"])])
    for mst in ("boruvka", "prim"):
        one_by_one = [hdbscan_labels(r, 40, mst=mst) for r in rows]
        for budget in (None, 1):  # one chunk, or one map per chunk
            batched = hdbscan_labels_batch(torch.from_numpy(rows), 40, mst=mst, memory_budget=budget)
            assert len(batched) == 4
            for b, reference in zip(batched, one_by_one):
                assert np.array_equal(reference, b)


def test_small_inputs_and_bad_arguments():
    rows = focal_like("forged", 100, 8, 0)
    assert (hdbscan_labels(rows, 200) == -1).all()  # fewer points than a cluster: all noise
    assert (hdbscan_labels(rows, 20, min_samples=101) == -1).all()
    assert (hdbscan_labels(rows[:1], 2) == -1).all()
    assert resolve_mst("auto", "cpu") == "prim" and resolve_mst("auto", "cuda") == "boruvka"
    with pytest.raises(ValueError, match="mst must be one of"):
        hdbscan_labels(rows, 20, mst="kruskal")
    with pytest.raises(ValueError, match="N x C"):
        hdbscan_labels(rows[None], 20)
    with pytest.raises(ValueError, match="finite"):
        hdbscan_labels(np.full((50, 4), np.nan, dtype=np.float32), 5)
    with pytest.raises(ValueError, match=r"\(B x\) N x N"):
        boruvka_mst(torch.zeros(3, 4))
    labels = labels_from_mst(np.array([1, 2 * 3 + 0]), np.array([1.0, 2.0]), 3, 2)  # edges 0-1, 0-2 (ids)
    assert labels.shape == (3,)


def test_clusterer_backends_agree_on_a_feature_map():
    rows = focal_like("two_forged", 1200, 32, 5)[:1024]
    features = torch.from_numpy(rows.T.reshape(32, 32, 32).copy())
    fast, _ = Clusterer(min_cluster_size=40, backend="torch")(features)
    slow, _ = Clusterer(min_cluster_size=40, backend="sklearn")(features)
    boruvka, _ = Clusterer(min_cluster_size=40, mst="boruvka")(features)
    assert torch.equal(fast, slow) and torch.equal(boruvka, slow)
    with pytest.raises(ValueError, match="backend"):
        Clusterer(backend="gpu-magic")
    with pytest.raises(ValueError, match="mst"):
        Clusterer(mst="kruskal")


# ------------------------------------------------------------------------------------------ CUDA


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("kind,seed", [("forged", 0), ("two_forged", 1), ("authentic", 2)])
def test_cuda_boruvka_equals_scikit_learn(kind, seed):
    rows = focal_like(kind, 2000, 64, seed)
    reference = HDBSCAN(min_cluster_size=60, copy=True).fit_predict(rows)
    labels = hdbscan_labels(torch.from_numpy(rows).cuda(), 60)  # auto: Boruvka, where the rows are
    assert isinstance(labels, np.ndarray) and labels.shape == (len(rows),)
    ambiguous, _ = ambiguous_points(rows, 60, None)
    assert same_partition(reference, labels, ~ambiguous)
    assert same_partition(hdbscan_labels(rows, 60, mst="boruvka"), labels)  # the CPU's Boruvka
    assert same_partition(reference, hdbscan_labels(rows, 60, device="cuda", mst="prim"))  # N x N to the host


@pytest.mark.gpu
@needs_cuda
def test_cuda_batched_boruvka_equals_scikit_learn_per_map():
    kinds = ["forged", "two_forged", "authentic", "forged", "two_forged"]
    rows = np.stack([focal_like(kind, 1600, 64, 10 + s)[:1450] for s, kind in enumerate(kinds)])
    for budget in (None, 2 * 1450 * 1450 * 8):  # one chunk, or chunks of two maps
        batched = hdbscan_labels_batch(torch.from_numpy(rows).cuda(), 50, memory_budget=budget)
        for r, labels in zip(rows, batched):
            reference = HDBSCAN(min_cluster_size=50, copy=True).fit_predict(r)
            ambiguous, _ = ambiguous_points(r, 50, None)
            assert isinstance(labels, np.ndarray) and same_partition(reference, labels, ~ambiguous)
    reach = squared_mutual_reachability(torch.from_numpy(rows).cuda().double(), 50)
    edges, weights = boruvka_mst(reach)
    assert edges.is_cuda and edges.shape == (5, 1449)
    cpu_edges, cpu_weights = boruvka_mst(reach.cpu())  # the same matrix: the same unique tree, same order
    assert torch.equal(edges.cpu(), cpu_edges) and torch.equal(weights.cpu(), cpu_weights)
