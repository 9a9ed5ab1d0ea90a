"""The fast exact HDBSCAN gives scikit-learn's partition, noise included (adjusted Rand index 1), by
both spanning trees: scikit-learn's own Prim on the host and Boruvka in torch by chunks of rows (run
here on the CPU; tests/test_hdbscan_ties.py covers exact ties, the CUDA tests at the end need a GPU).
Its distances, core distances and Prim tree are scikit-learn's own, bit for bit."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.feature_maps import focal_like, same_partition
from helpers.hdbscan_ties import ambiguous_points
from sklearn.cluster import HDBSCAN
from sklearn.cluster._hdbscan._linkage import mst_from_data_matrix
from sklearn.metrics import DistanceMetric
from sklearn.neighbors import NearestNeighbors

from focal_pl.clustering import Clusterer
from focal_pl.clustering.fast_hdbscan import (
    CHUNK_BYTES_PER_PAIR,
    EXACT_BYTES,
    boruvka_mst,
    boruvka_tree,
    chunk_rows,
    core_distances,
    exact_distances,
    hdbscan_labels,
    hdbscan_labels_batch,
    labels_from_mst,
    prim_tree,
    resolve_mst,
)
from focal_pl.clustering.fast_hdbscan.arrays import _mirror_numpy, _mirror_torch
from focal_pl.clustering.fast_hdbscan.exact import _square_keys

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


CASES = [
    ("forged", 1500, 64, dict(min_cluster_size=60)),
    ("two_forged", 1500, 64, dict(min_cluster_size=60)),
    ("two_forged", 1500, 64, dict(min_cluster_size=40, min_samples=8)),
    ("authentic", 1500, 64, dict(min_cluster_size=60)),
    ("authentic", 1500, 64, dict(min_cluster_size=60, allow_single_cluster=True)),
    ("forged", 1500, 64, dict(min_cluster_size=60, allow_single_cluster=True)),
    pytest.param("forged", 4096, 256, dict(min_cluster_size=200), marks=pytest.mark.slow),  # the paper's 64 x 64 x 256
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


def scikit_learn_tree(rows: np.ndarray, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's own core distances and Prim tree, as its public HDBSCAN computes them."""
    x = rows.astype(np.float64)
    distances, _ = NearestNeighbors(n_neighbors=min_samples, algorithm="kd_tree").fit(x).kneighbors(x, min_samples)
    core = np.ascontiguousarray(distances[:, -1])
    return core, mst_from_data_matrix(x, core, DistanceMetric.get_metric("euclidean"), 1.0)


def same_tree(a: np.ndarray, b: np.ndarray) -> bool:
    return all(np.array_equal(a[f], b[f]) for f in ("current_node", "next_node", "distance"))


def with_flat_regions(rows: np.ndarray, seed: int, near: bool = True) -> np.ndarray:
    """Regions of identical rows (a flat image area), and near-duplicates a rounding apart."""
    g = np.random.default_rng(seed)
    rows = rows.copy()
    picks = g.choice(len(rows), 160, replace=False)
    rows[picks[:90]] = rows[picks[0]]
    rows[picks[90:120]] = rows[picks[90]]
    if near:
        rows[picks[120:140]] = rows[picks[140:160]] + np.float32(1e-7)
    return rows


def lattice(seed: int) -> np.ndarray:
    """Points on an integer grid: every distance is the root of an integer, ties everywhere."""
    g = np.random.default_rng(seed)
    parts = [g.integers(0, 6, size=(300, 3)), g.integers(0, 4, size=(90, 3)) + 9, g.integers(0, 20, size=(20, 3))]
    return np.concatenate(parts).astype(np.float32)


def test_distances_and_core_distances_are_scikit_learns_bit_for_bit():
    """Features summed in order, as scikit-learn's Cython loop: not merely close, equal."""
    rows = with_flat_regions(focal_like("two_forged", 600, 48, 3), 3)
    n = len(rows)
    reference = DistanceMetric.get_metric("euclidean").pairwise(rows.astype(np.float64))
    first, second = np.divmod(np.arange(n * n), n)
    assert np.array_equal(exact_distances(rows, first, second), reference.ravel())
    on_torch = exact_distances(torch.from_numpy(rows), first[:5000], second[:5000])
    assert isinstance(on_torch, torch.Tensor) and np.array_equal(on_torch.numpy(), reference.ravel()[:5000])
    # a sum that is not in order (NumPy's pairwise one) is not scikit-learn's
    assert not np.array_equal(np.sqrt(((rows[:50, None].astype(np.float64) - rows[None]) ** 2).sum(-1)),
                              reference[:50])
    for samples, chunks in ((1, [None]), (2, [None]), (10, [None, 7, 250]), (60, [None, 250])):
        core, _ = scikit_learn_tree(rows, samples)
        assert np.array_equal(core_distances(rows, samples), core)
        for chunk in chunks:
            assert np.array_equal(core_distances(torch.from_numpy(rows), samples, chunk).numpy(), core)
    _, group, size = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    flat = size[group] >= 30  # the 90 and the 30 identical rows: core distance 0 at min_samples 30
    assert flat.sum() == 120 and (core_distances(rows, 30)[flat] == 0).all() and (core_distances(rows, 31)[flat] > 0).any()


def test_square_keys_order_and_tie_like_the_roots():
    g = np.random.default_rng(0)
    squares = np.concatenate([g.random(20000) * 4, [0.0, 5e-324, 1.0, 2.0]])
    squares = np.concatenate([squares, np.nextafter(squares, np.inf)])  # neighbours: half share a root
    keys = _square_keys(squares)
    roots = np.sqrt(squares)
    assert np.array_equal(np.sqrt(keys), roots) and (keys <= squares).all()
    i, j = g.integers(0, len(squares), (2, 200000))
    assert np.array_equal(keys[i] < keys[j], roots[i] < roots[j])
    assert np.array_equal(keys[i] == keys[j], roots[i] == roots[j])
    assert (roots[:20004] == roots[20004:]).any() and (squares[:20004] != squares[20004:]).all()
    assert np.array_equal(_square_keys(torch.from_numpy(squares)).numpy(), keys)


@pytest.mark.parametrize("case", ["continuous", "flat", "lattice", "single", "float64", "tiny", "huge"])
def test_prim_tree_is_scikit_learns_own_tree_bit_for_bit(case):
    """The same edges, in the same (Prim) order, with the same weights as scikit-learn's
    ``mst_from_data_matrix`` on its own core distances: ties included, whatever the data's scale."""
    rows, samples = focal_like("forged", 900, 32, 5), 20
    if case == "flat":
        rows = with_flat_regions(rows, 5)
    elif case == "lattice":
        rows, samples = lattice(1), 10
    elif case == "single":
        samples = 1
    elif case == "float64":
        rows = rows.astype(np.float64) + 1e-9 * np.random.default_rng(0).standard_normal(rows.shape)
    elif case == "tiny":  # the float32 bounds would underflow: float64 bounds instead
        rows = rows.astype(np.float64) * 1e-25
    elif case == "huge":  # and overflow
        rows = rows.astype(np.float64) * 1e25
    _, reference = scikit_learn_tree(rows, samples)
    assert same_tree(prim_tree(rows, samples), reference)


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
    """A matrix given to ``boruvka_mst`` need not be exactly symmetric: it must weigh (i, j) the same
    from both ends, or its tie-breaking is inconsistent and a cycle can form."""
    g = torch.Generator().manual_seed(3)
    upper = torch.triu(torch.randint(1, 4, (3, 40, 40), generator=g).double(), 1)
    symmetric = upper + upper.mT
    skewed = symmetric - torch.tril(torch.rand(3, 40, 40, generator=g, dtype=torch.float64), -1)
    edges, weights = boruvka_mst(skewed)
    for m in range(3):
        assert set(edges[m].tolist()) == kruskal(symmetric[m].numpy())
    for width in (7, 40, 64):  # the GPU's way (torch strips) and the CPU's (NumPy), any strip width
        assert torch.equal(_mirror_torch(skewed.clone(), width), symmetric)
        assert torch.equal(_mirror_numpy(skewed.clone(), width), symmetric)


def test_boruvka_and_prim_trees_have_scikit_learns_weights():
    rows = focal_like("two_forged", 700, 16, 2)
    _, reference = scikit_learn_tree(rows, 10)
    edges, weights = boruvka_tree(torch.from_numpy(rows), 10)
    assert np.array_equal(weights.numpy(), np.sort(reference["distance"]))  # bit for bit, sorted
    assert len(set(edges.tolist())) == len(rows) - 1
    assert same_tree(prim_tree(rows, 10), reference)


@pytest.mark.parametrize("case", ["continuous", "flat"])
def test_chunked_boruvka_equals_unchunked_and_scikit_learn(case):
    """Boruvka by chunks of rows (HRNet's 256 x 256 maps on a GPU never hold N x N): any chunking,
    down to one row, gives the same tree bit for bit, hence the same labels; those equal
    scikit-learn's outside the tied points, and its weights are scikit-learn's."""
    rows = focal_like("two_forged", 570, 24, 8)[:520]
    if case == "flat":
        rows = with_flat_regions(rows, 8, near=False)
    data = torch.from_numpy(rows)
    whole = boruvka_tree(data, 15)  # one chunk: every row at once
    for rows_per_chunk in (1, 7, 100) if case == "continuous" else (50,):
        edges, weights = boruvka_tree(data, 15, rows_per_chunk=rows_per_chunk)
        assert torch.equal(edges, whole[0]) and torch.equal(weights, whole[1])
    budget = CHUNK_BYTES_PER_PAIR * 520 * 40 + 520 * (24 * 12 + 200) + EXACT_BYTES  # 40 rows per chunk
    assert chunk_rows(520, 24, budget) == 40
    assert torch.equal(boruvka_tree(data, 15, memory_budget=budget)[0], whole[0])
    _, reference = scikit_learn_tree(rows, 15)
    assert np.array_equal(whole[1].numpy(), np.sort(reference["distance"]))
    expected = HDBSCAN(min_cluster_size=30, min_samples=15, copy=True).fit_predict(rows)
    labels = hdbscan_labels(rows, 30, 15, mst="boruvka", memory_budget=budget)
    assert np.array_equal(labels, labels_from_mst(*[t.numpy() for t in whole], 520, 30, presorted=True))
    ambiguous, regroup = ambiguous_points(rows, 30, 15)
    assert not regroup and same_partition(expected, labels, ~ambiguous)


def test_batched_labels_equal_one_map_at_a_time_in_any_chunking():
    rows = np.stack([focal_like(kind, 900, 32, s)[:820] for s, kind in enumerate(["forged", "two_forged",
                                                                                   "authentic", "forged"])])
    budget = 205 * 820 * CHUNK_BYTES_PER_PAIR + 4 * 820 * (32 * 12 + 200) + EXACT_BYTES
    assert chunk_rows(820, 32, budget, 4, maps=4) == 205
    for mst in ("boruvka", "prim"):
        one_by_one = [hdbscan_labels(r, 40, mst=mst) for r in rows]
        for budget in (None, budget):  # whole maps, or chunks of 205 rows
            batched = hdbscan_labels_batch(torch.from_numpy(rows), 40, mst=mst, memory_budget=budget)
            assert len(batched) == 4
            for b, reference in zip(batched, one_by_one):
                assert np.array_equal(reference, b)


def test_auto_takes_prim_on_the_cpu_while_its_matrix_fits():
    assert resolve_mst("auto", "cpu") == "prim" and resolve_mst("auto", "cuda") == "boruvka"
    assert resolve_mst("auto", "cpu", 4096, memory_budget=4 * 4096**2) == "prim"
    assert resolve_mst("auto", "cpu", 4096, memory_budget=4 * 4096**2 - 1) == "boruvka"
    assert resolve_mst("prim", "cuda", 10**6) == "prim"


def test_small_inputs_and_bad_arguments():
    rows = focal_like("forged", 100, 8, 0)
    assert (hdbscan_labels(rows, 200) == -1).all()  # fewer points than a cluster: all noise
    assert (hdbscan_labels(rows, 20, min_samples=101) == -1).all()
    assert (hdbscan_labels(rows[:1], 2) == -1).all()
    with pytest.raises(ValueError, match="mst must be one of"):
        hdbscan_labels(rows, 20, mst="kruskal")
    with pytest.raises(ValueError, match="N x C"):
        hdbscan_labels(rows[None], 20)
    with pytest.raises(ValueError, match="finite"):
        hdbscan_labels(np.full((50, 4), np.nan, dtype=np.float32), 5)
    with pytest.raises(ValueError, match=r"\(B x\) N x N"):
        boruvka_mst(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(B x\) N x C"):
        boruvka_tree(torch.zeros(3), 2)
    labels = labels_from_mst(np.array([1, 2 * 3 + 0]), np.array([1.0, 2.0]), 3, 2)  # edges 0-1, 0-2 (ids)
    assert labels.shape == (3,)
    assert len(prim_tree(rows[:1], 1)) == 0


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


def private_sklearn_imports(path: Path) -> set[str]:
    """The private scikit-learn objects a file imports: ``module.name`` where a part starts with ``_``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sklearn":
            for alias in node.names:
                if any(part.startswith("_") for part in [*node.module.split("."), alias.name]):
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names
                      if a.name.split(".")[0] == "sklearn" and any(p.startswith("_") for p in a.name.split("."))}
    return found


def test_scikit_learns_private_tree_code_is_still_where_one_module_imports_it():
    """An upgrade of scikit-learn that moves its private HDBSCAN code fails here, naming what moved;
    ``fast_hdbscan.sklearn_tree`` is the only package module that imports any of it."""
    import sklearn

    from focal_pl.clustering.fast_hdbscan import sklearn_tree

    for module, name in sklearn_tree.PRIVATE:
        follow = f"focal_pl/clustering/fast_hdbscan/sklearn_tree.py must follow scikit-learn {sklearn.__version__}"
        try:
            found = importlib.import_module(module)
        except ImportError:
            pytest.fail(f"scikit-learn has no module {module} any more: {follow}")
        assert hasattr(found, name), f"scikit-learn moved {module}.{name}: {follow}"
    package = Path(sklearn_tree.__file__).parents[3]  # the repository root: focal_pl/...
    users = {str(p.relative_to(package)): private_sklearn_imports(p) for p in (package / "focal_pl").rglob("*.py")}
    users = {path: names for path, names in users.items() if names}
    assert users == {"focal_pl/clustering/fast_hdbscan/sklearn_tree.py": {f"{m}.{n}" for m, n in sklearn_tree.PRIVATE}}


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
    assert np.array_equal(hdbscan_labels(rows, 60, mst="boruvka"), labels)  # the CPU's Boruvka, bit for bit
    assert same_partition(reference, hdbscan_labels(rows, 60, device="cuda", mst="prim"))  # Prim: the host


@pytest.mark.gpu
@needs_cuda
def test_cuda_chunked_boruvka_stays_within_its_budget_and_equals_the_cpu():
    """The chunked path's peak on the device: rows and chunks within the memory budget it was given;
    the tree equals the CPU's bit for bit (exact weights, the same order), core distances included."""
    kinds = ["forged", "two_forged", "authentic"]
    rows = np.stack([focal_like(kind, 3000, 64, 10 + s)[:2700] for s, kind in enumerate(kinds)])
    data = torch.from_numpy(rows).cuda()
    for budget in (None, 64 << 20):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        edges, weights = boruvka_tree(data, 50, memory_budget=budget)
        peak = torch.cuda.max_memory_allocated() - before
        if budget is not None:
            assert chunk_rows(2700, 64, budget, maps=3) < 2700 and peak <= budget, (peak, budget)
        cpu_edges, cpu_weights = boruvka_tree(torch.from_numpy(rows), 50)
        assert torch.equal(edges.cpu(), cpu_edges) and torch.equal(weights.cpu(), cpu_weights)
    assert np.array_equal(core_distances(data[0], 50).cpu().numpy(), core_distances(rows[0], 50))
    for r, labels in zip(rows, hdbscan_labels_batch(data, 50)):
        reference = HDBSCAN(min_cluster_size=50, copy=True).fit_predict(r)
        ambiguous, _ = ambiguous_points(r, 50, None)
        assert isinstance(labels, np.ndarray) and same_partition(reference, labels, ~ambiguous)
