"""The fast exact HDBSCAN gives scikit-learn's partition, noise included (adjusted Rand index 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import HDBSCAN
from sklearn.metrics import adjusted_rand_score

from focal_pl.clustering import Clusterer
from focal_pl.clustering.fast_hdbscan import hdbscan_labels, mutual_reachability


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
    reference = HDBSCAN(copy=True, **params).fit_predict(rows)
    fast = hdbscan_labels(rows, params["min_cluster_size"], params.get("min_samples"),
                          params.get("allow_single_cluster", False))
    assert adjusted_rand_score(reference, fast) == 1.0
    assert np.array_equal(reference == -1, fast == -1)  # the same noise points
    assert (reference == -1).any() or kind == "authentic"


def test_mutual_reachability_matches_its_definition():
    rows = torch.from_numpy(focal_like("forged", 200, 16, 3)).double()
    reach = mutual_reachability(rows, 5)
    distances = torch.cdist(rows, rows, compute_mode="donot_use_mm_for_euclid_dist")
    core = distances.sort(1).values[:, 4]  # the 5th smallest, the point itself included
    expected = torch.maximum(distances, torch.maximum(core[:, None], core[None, :]))
    assert torch.allclose(reach, expected, atol=1e-10)


def test_clusterer_backends_agree_on_a_feature_map():
    rows = focal_like("two_forged", 1200, 32, 5)[:1024]
    features = torch.from_numpy(rows.T.reshape(32, 32, 32).copy())
    fast, _ = Clusterer(min_cluster_size=40, backend="torch")(features)
    slow, _ = Clusterer(min_cluster_size=40, backend="sklearn")(features)
    assert torch.equal(fast, slow)
    with pytest.raises(ValueError, match="backend"):
        Clusterer(backend="gpu-magic")
