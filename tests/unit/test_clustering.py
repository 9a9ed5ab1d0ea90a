"""Per-image clustering: the labelling rule, the algorithms, noise handling and mask resizing."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from focal_pl.evaluation.masks import resize_mask
from focal_pl.clustering import (
    ALGORITHMS,
    Clusterer,
    cluster_labels,
    cluster_mask,
    feature_rows,
    forged_from_labels,
    membership_score,
    pool_to_grid,
    pooled_size,
    pristine_distance_score,
    resolve_min_cluster_size,
)


def feature_map(side=24, channels=32, forged=True, spread=0.3, seed=0):
    """A FOCAL-like map: pristine features around one direction, a forged block around another."""
    g = torch.Generator().manual_seed(seed)
    base, other = torch.randn(2, channels, generator=g)
    features = base[:, None, None] + spread * torch.randn(channels, side, side, generator=g)
    truth = torch.zeros(side, side, dtype=torch.bool)
    if forged:
        truth[3:11, 5:15] = True
        features[:, truth] = other[:, None] + spread * torch.randn(channels, int(truth.sum()), generator=g)
    return features, truth


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_finds_a_separated_forged_region(algorithm):
    features, truth = feature_map()
    mask, score = cluster_mask(features, algorithm=algorithm, min_cluster_size=20)
    assert mask.shape == truth.shape and mask.dtype == torch.bool
    assert torch.equal(mask, truth)
    assert 0.0 <= score.min() and score.max() <= 1.0
    assert score[truth].mean() > 0.8 > 0.2 > score[~truth].mean()


def test_the_largest_cluster_is_called_pristine_even_when_the_forgery_is_the_majority():
    """The rule knows sizes, not truth: a forgery covering 40% of the map is found; one covering
    60% makes the pristine part the smaller cluster, so the mask comes out inverted (FOCAL's
    assumption that most of an image is pristine, paper Section IV)."""
    g = torch.Generator().manual_seed(3)
    base, other = torch.randn(2, 32, generator=g)
    for share, expected_inverted in ((0.4, False), (0.6, True)):
        truth = torch.zeros(20, 20, dtype=torch.bool)
        truth[:, : int(20 * share)] = True
        features = base[:, None, None] + 0.3 * torch.randn(32, 20, 20, generator=g)
        features[:, truth] = other[:, None] + 0.3 * torch.randn(32, int(truth.sum()), generator=g)
        assert truth.float().mean() == pytest.approx(share)
        mask, _ = cluster_mask(features, algorithm="kmeans")
        assert torch.equal(mask, ~truth if expected_inverted else truth), share


def test_hdbscan_on_an_authentic_map_gives_an_empty_mask():
    features, _ = feature_map(forged=False)
    mask, score = cluster_mask(features, min_cluster_size=20)
    assert not mask.any()
    assert score.shape == mask.shape and torch.isfinite(score).all()
    # k-means always splits in two: the false alarm HDBSCAN avoids (paper Table VIII)
    assert cluster_mask(features, algorithm="kmeans")[0].any()


def test_noise_rules():
    rows = np.array([[1, 0], [1, 0.1], [0.9, 0], [0, 1], [0.1, 1], [0.8, 0.3], [0.2, 0.9]], float)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    labels = np.array([0, 0, 0, 1, 1, -1, -1])
    nearest, center = forged_from_labels(rows, labels, "nearest")
    assert nearest.tolist() == [False, False, False, True, True, False, True]
    assert np.allclose(center, rows[:3].mean(0) / np.linalg.norm(rows[:3].mean(0)))
    assert forged_from_labels(rows, labels, "forged")[0][5:].all()
    assert not forged_from_labels(rows, labels, "pristine")[0][5:].any()
    assert not forged_from_labels(rows, np.full(7, -1), "forged")[0].any()  # no cluster: authentic
    with pytest.raises(ValueError, match="noise must be"):
        forged_from_labels(rows, labels, "maybe")


def test_min_cluster_size_is_a_count_or_a_fraction():
    assert resolve_min_cluster_size(200, 4096) == 200
    assert resolve_min_cluster_size(0.05, 4096) == 205
    assert resolve_min_cluster_size(0.0001, 100) == 2
    for bad in (1, 0, -3, 2.5):
        with pytest.raises(ValueError, match="min_cluster_size"):
            resolve_min_cluster_size(bad, 100)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        Clusterer(algorithm="dbscan")


def test_grid_pools_large_maps_before_clustering():
    features, truth = feature_map(side=32)
    mask, _ = Clusterer("kmeans", grid=16)(features)
    assert mask.shape == (16, 16)
    up = resize_mask(mask, (32, 32))
    core = torch.zeros_like(truth)
    core[4:10, 6:14] = True  # the 2 x 2 cells wholly inside the forged block
    allowed = torch.zeros_like(truth)
    allowed[2:12, 4:16] = True  # the block grown to whole 2 x 2 cells
    assert up[core].all() and not up[~allowed].any()


def test_resize_mask_nearest_and_bilinear():
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1:3, 1:3] = True
    up = resize_mask(mask, (8, 8))
    assert up.shape == (8, 8) and up.sum() == 16 and up[2:6, 2:6].all()
    smooth = resize_mask(mask, (16, 16), mode="bilinear")
    assert smooth.dtype == torch.bool and 0 < smooth.sum() < 256
    assert torch.equal(resize_mask(mask, (4, 4)), mask)


# ------------------------------------------------------------------ the labelling rule in torch


def numpy_rule(rows, labels, noise):
    """The former NumPy labelling rule, kept as the reference of the torch one."""
    def unit(v):
        return v / max(float(np.linalg.norm(v)), 1e-12)

    clusters, sizes = np.unique(labels[labels >= 0], return_counts=True)
    if clusters.size == 0:
        forged, center = np.zeros(labels.shape, dtype=bool), unit(rows.mean(0))
    else:
        pristine = clusters[np.argmax(sizes)]
        forged = (labels >= 0) & (labels != pristine)
        noisy = labels < 0
        if noisy.any() and noise == "forged":
            forged |= noisy
        elif noisy.any() and noise == "nearest":
            centers = np.stack([unit(rows[labels == c].mean(0)) for c in clusters])
            forged[noisy] = clusters[np.argmax(rows[noisy] @ centers.T, axis=1)] != pristine
        center = unit(rows[labels == pristine].mean(0))
    distance = 1.0 - rows @ center
    low, high = distance.min(), distance.max()
    score = np.zeros_like(distance) if high - low < 1e-12 else (distance - low) / (high - low)
    return forged, center, score


@pytest.mark.parametrize("noise", ["nearest", "forged", "pristine"])
def test_torch_labelling_rule_equals_the_former_numpy_one(noise):
    g = np.random.default_rng(0)
    for trial in range(12):
        features, _ = feature_map(side=16, seed=trial)
        rows = feature_rows(features)
        k = trial % 4  # 0 clusters (all noise) .. 3 clusters, names not contiguous
        labels = np.where(g.random(len(rows)) < 0.2, -1, g.choice([0, 3, 7][: max(k, 1)], size=len(rows)))
        if k == 0:
            labels[:] = -1
        forged, center, score = numpy_rule(rows, labels, noise)
        forged_t, center_t = forged_from_labels(torch.from_numpy(rows), labels, noise)
        score_t = pristine_distance_score(torch.from_numpy(rows), center_t)
        assert isinstance(forged_t, torch.Tensor) and forged_t.dtype == torch.bool
        assert np.array_equal(forged_t.numpy(), forged)
        assert np.allclose(center_t.numpy(), center, atol=1e-6)
        assert score_t.dtype == torch.float32 and np.allclose(score_t.numpy(), score, atol=1e-5)
        forged_n, center_n = forged_from_labels(rows, labels, noise)  # NumPy in, NumPy out
        assert isinstance(forged_n, np.ndarray) and np.array_equal(forged_n, forged)
        assert isinstance(pristine_distance_score(rows, center_n), np.ndarray)
    flat = np.ones((5, 3), np.float32) / np.sqrt(3)
    assert (pristine_distance_score(flat, flat[0]) == 0).all()  # every distance the same: zeros


def test_clusterer_masks_equal_the_former_numpy_rule_on_feature_maps():
    for seed, forged in ((0, True), (1, True), (2, False)):
        features, _ = feature_map(side=24, seed=seed, forged=forged, spread=0.45)
        clusterer = Clusterer(min_cluster_size=20)
        rows = feature_rows(features)
        labels = cluster_labels(rows, "hdbscan", 20)
        expected_mask, _, expected_score = numpy_rule(rows, labels, "nearest")
        mask, score = clusterer(features)
        assert np.array_equal(mask.flatten().numpy(), expected_mask)
        assert np.allclose(score.flatten().numpy(), expected_score, atol=1e-5)


# ------------------------------------------------------------------ devices, batches, validation


def test_results_come_back_on_the_cpu_and_device_is_honoured():
    features, truth = feature_map()
    for device in ("auto", "cpu"):
        mask, score = Clusterer(min_cluster_size=20, device=device)(features)
        assert mask.device.type == score.device.type == "cpu"
        assert mask.dtype == torch.bool and score.dtype == torch.float32 and torch.equal(mask, truth)
    mask, _ = Clusterer(min_cluster_size=20)(features.numpy())  # NumPy features too
    assert torch.equal(mask, truth)
    clusterer = Clusterer(device="cuda:1")
    assert clusterer.compute_device(features) == torch.device("cuda:1")
    assert Clusterer().compute_device(features) == torch.device("cpu")
    assert "device" not in repr(clusterer) and "mst" not in repr(clusterer)


@pytest.mark.parametrize("algorithm,mst", [("hdbscan", "auto"), ("hdbscan", "boruvka"), ("kmeans", "auto")])
def test_cluster_batch_equals_one_map_at_a_time(algorithm, mst):
    maps = [feature_map(side=20, seed=s, forged=s != 2)[0] for s in range(4)]
    features = torch.stack(maps)
    clusterer = Clusterer(algorithm, min_cluster_size=20, mst=mst)
    batched = clusterer.cluster_batch(features)
    assert len(batched) == 4
    for (mask, score), fmap in zip(batched, maps):
        one_mask, one_score = clusterer(fmap)
        assert mask.device.type == "cpu" and torch.equal(mask, one_mask)
        assert torch.allclose(score, one_score, atol=1e-6)
    assert not batched[2][0].any() or algorithm == "kmeans"  # the authentic map


@pytest.mark.parametrize("fusion", ["union", "intersection"])
def test_result_level_fusion_in_both_calls(fusion):
    first, truth = feature_map(side=20, seed=0)
    second = first.clone()
    second[:, :3, :] = first[:, 10:13, :]  # the second member also sees a band at the top as forged
    features = torch.cat([first, second])  # two members of 32 channels
    clusterer = Clusterer(min_cluster_size=20, fusion=fusion)
    member_masks = [Clusterer(min_cluster_size=20)(f)[0] for f in (first, second)]
    expected = member_masks[0] | member_masks[1] if fusion == "union" else member_masks[0] & member_masks[1]
    assert not torch.equal(member_masks[0], member_masks[1])
    mask, score = clusterer(features, splits=[32, 32])
    assert torch.equal(mask, expected) and score.shape == mask.shape
    (batch_mask, batch_score), = clusterer.cluster_batch(features[None], splits=[32, 32])
    assert torch.equal(batch_mask, expected) and torch.allclose(batch_score, score, atol=1e-6)
    joint, _ = clusterer(features)  # no splits: the concatenation is clustered
    assert joint.shape == mask.shape


def test_grid_pooling_in_a_batch_and_for_numpy():
    features = torch.stack([feature_map(side=32, seed=s)[0] for s in range(2)])
    assert pool_to_grid(features, 16).shape == (2, 32, 16, 16)
    assert pool_to_grid(features[0].numpy(), 16).shape == (32, 16, 16)
    assert pool_to_grid(features, None) is features
    masks = Clusterer(min_cluster_size=10, grid=16).cluster_batch(features)
    assert [m.shape for m, _ in masks] == [(16, 16), (16, 16)]
    assert torch.equal(masks[1][0], Clusterer(min_cluster_size=10, grid=16)(features[1])[0])


# ------------------------------------------------------------------ max_points


def test_max_points_pools_a_large_map_to_at_most_that_many_points():
    """A 256 x 256 map (65536 points) is clustered at 128 x 128 by default: the mask has the pooled grid's
    size (callers resize it to the image), in both calls; the pooled map is what the grid would give."""
    features, _ = feature_map(side=256, channels=8)
    clusterer = Clusterer("kmeans")
    assert clusterer.max_points == 16384
    mask, score = clusterer(features)
    assert mask.shape == score.shape == (128, 128) and mask.numel() <= 16384
    (batch_mask, _), = clusterer.cluster_batch(features[None])
    assert torch.equal(batch_mask, mask)
    assert torch.equal(Clusterer("kmeans", grid=128, max_points=None)(features)[0], mask)
    assert torch.equal(pool_to_grid(features, None, 16384), pool_to_grid(features, 128))
    # the torch backend's batched HDBSCAN pools alike (a small cap keeps the test quick)
    maps = torch.stack([feature_map(side=32, seed=s)[0] for s in range(2)])
    capped = Clusterer(min_cluster_size=10, max_points=256)
    batched = capped.cluster_batch(maps)
    assert [m.shape for m, _ in batched] == [(16, 16), (16, 16)]
    assert torch.equal(batched[1][0], capped(maps[1])[0]) and batched[0][0].any()


def test_a_map_under_max_points_is_clustered_as_it_is():
    features, truth = feature_map(side=24)
    assert pool_to_grid(features, None, 24 * 24) is features
    capped, uncapped = Clusterer(min_cluster_size=20)(features), Clusterer(min_cluster_size=20, max_points=None)(features)
    assert torch.equal(capped[0], truth) and torch.equal(capped[0], uncapped[0]) and torch.equal(capped[1], uncapped[1])


def test_pooled_size_meets_both_caps_and_keeps_the_aspect():
    assert pooled_size(256, 256, None, 16384) == (128, 128)
    assert pooled_size(256, 256, 64, 16384) == (64, 64)  # the grid is the tighter cap
    assert pooled_size(256, 256, 200, 16384) == (128, 128)  # the count is
    assert pooled_size(300, 200, None, 16384) == (157, 104)  # aspect kept to a cell: 16328 points
    assert pooled_size(3, 100000, None, 16384) == (1, 16384)  # a side held at 1 leaves the other the count
    assert pooled_size(40, 30, None, None) == (40, 30) == pooled_size(40, 30, 64, 1200)
    assert pooled_size(32, 48, 16, None) == (11, 16)  # grid alone: as before max_points
    g = np.random.default_rng(0)
    for h, w, cap in zip(g.integers(1, 600, 300), g.integers(1, 600, 300), g.integers(1, 40000, 300)):
        ph, pw = pooled_size(int(h), int(w), None, int(cap))
        assert 1 <= ph <= h and 1 <= pw <= w
        assert ph * pw <= cap or (ph, pw) == (1, 1)
        if h * w <= cap:
            assert (ph, pw) == (h, w)
        elif min(ph, pw) > 1:
            assert abs(ph / pw - h / w) <= 2 * (h / w) / min(ph, pw)  # the aspect, to a cell


# ------------------------------------------------------------------ the hdbscan package's backend


def map_of(rows: np.ndarray) -> torch.Tensor:
    """N x C rows (N a square) as a C x side x side feature map."""
    side = int(round(len(rows) ** 0.5))
    return torch.from_numpy(np.ascontiguousarray(rows[: side * side].T.reshape(-1, side, side)))


def groups(case: str) -> torch.Tensor:
    from helpers.feature_maps import focal_like

    if case == "two":
        return feature_map(side=24, spread=0.45)[0]
    if case == "one":
        return feature_map(side=24, forged=False)[0]
    return map_of(focal_like("two_forged", 1200, 32, 5)[:1024])  # three groups and stray points


@pytest.mark.parametrize("case", ["two", "one", "three"])
def test_the_hdbscan_backend_gives_our_partition_with_default_options(case):
    from helpers.feature_maps import same_partition

    features = groups(case)
    rows = feature_rows(features)
    ours = cluster_labels(rows, min_cluster_size=20)
    package = cluster_labels(rows, min_cluster_size=20, backend="hdbscan")
    assert same_partition(ours, package)  # noise included
    assert len(set(ours.tolist()) - {-1}) == {"two": 2, "one": 0, "three": 3}[case]
    mask, score = Clusterer(min_cluster_size=20, backend="hdbscan")(features)
    ours_mask, ours_score = Clusterer(min_cluster_size=20)(features)
    assert torch.equal(mask, ours_mask) and torch.equal(score, ours_score)  # one labelling rule


def nested_groups(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A map made for the selection options: A1 (the left half) and A2 (the right half) close together,
    B (a block) far away. Excess of mass takes A1 + A2 as one cluster, leaf takes both apart."""
    g = torch.Generator().manual_seed(seed)
    a, d, e = torch.randn(3, 16, generator=g)
    a = 4 * a / a.norm()
    d = d - (d @ a) * a / 16
    d = d / d.norm()
    e = e - (e @ a) * a / 16 - (e @ d) * d
    e = e / e.norm()
    features = a[:, None, None] + 0.1 * torch.randn(16, 32, 32, generator=g)
    part = torch.zeros(32, 32, dtype=torch.long)
    part[:, 16:] = 1
    part[4:12, 4:12] = 2
    features[:, part == 1] += d[:, None]
    features[:, part == 2] += 3 * e[:, None]
    return features, part


def test_leaf_selection_and_epsilon_change_the_clusters_on_a_map_made_for_it():
    from helpers.feature_maps import same_partition

    features, part = nested_groups()
    eom, _ = Clusterer(min_cluster_size=30, backend="hdbscan")(features)
    assert torch.equal(eom, part == 2)  # A1 + A2 pristine, B forged
    leaf, _ = Clusterer(min_cluster_size=30, backend="hdbscan", cluster_selection_method="leaf")(features)
    assert (leaf[part == 0].float().mean() > 0.95 and leaf[part == 2].all()  # A2 is now the largest
            and not leaf[part == 1].any())
    rows = feature_rows(features)
    labels = {b: cluster_labels(rows, min_cluster_size=30, backend=b, cluster_selection_method="leaf")
              for b in ("torch", "sklearn", "hdbscan")}
    assert len(set(labels["torch"].tolist()) - {-1}) == 3
    assert same_partition(labels["torch"], labels["sklearn"]) and same_partition(labels["torch"], labels["hdbscan"])
    assert torch.equal(Clusterer(min_cluster_size=30, cluster_selection_method="leaf")(features)[0], leaf)
    merged, _ = Clusterer(min_cluster_size=30, backend="hdbscan", cluster_selection_method="leaf",
                          cluster_selection_epsilon=0.3)(features)
    assert torch.equal(merged, eom)  # epsilon merges A1 and A2 back
    assert torch.equal(Clusterer(min_cluster_size=30, backend="hdbscan", cluster_selection_method="leaf",
                                 cluster_selection_epsilon=0.05)(features)[0], leaf)  # below their split: no change


def test_the_membership_score_is_in_0_1_and_higher_on_forged_pixels():
    from sklearn.metrics import roc_auc_score

    for seed in range(3):
        features, truth = feature_map(side=24, seed=seed, spread=0.45)
        clusterer = Clusterer(min_cluster_size=20, backend="hdbscan", score="membership")
        mask, score = clusterer(features)
        assert torch.equal(mask, Clusterer(min_cluster_size=20, backend="hdbscan")(features)[0])  # the same mask
        assert score.dtype == torch.float32 and score.shape == mask.shape
        assert 0.0 <= score.min() and score.max() <= 1.0
        assert score[truth].mean() > score[~truth].mean() + 0.05
        assert roc_auc_score(truth.flatten().numpy(), score.flatten().numpy()) > 0.99
        (batch_mask, batch_score), = clusterer.cluster_batch(features[None])
        assert torch.equal(batch_mask, mask) and torch.equal(batch_score, score)
    authentic, _ = feature_map(side=24, forged=False)
    mask, score = Clusterer(min_cluster_size=20, backend="hdbscan", score="membership")(authentic)
    assert not mask.any() and not score.any()  # no cluster: authentic, a zero score
    single = Clusterer(min_cluster_size=20, backend="hdbscan", score="membership", allow_single_cluster=True)
    mask, score = single(authentic)  # one cluster: hdbscan's membership vectors fail there; its strengths
    assert not mask.any() and 0.0 <= score.min() and score.max() <= 1.0


def test_membership_score_follows_the_pristine_rule():
    labels = np.array([1, 1, 1, 0, 0, -1])  # cluster 1 is the largest: pristine
    membership = np.array([[0.1, 0.6], [0.0, 0.9], [0.2, 0.2], [0.7, 0.1], [0.5, 0.0], [0.0, 0.0]])
    score = membership_score(membership, labels)
    assert np.allclose(score.numpy(), [1 - 0.6 / 0.7, 0.0, 0.5, 1 - 0.1 / 0.8, 1.0, 1.0])
    assert not membership_score(np.zeros((6, 0)), np.full(6, -1)).any()


@pytest.mark.parametrize("arguments,message", [
    (dict(min_cluster_size=1), "min_cluster_size must be an integer >= 2 or a fraction in"),
    (dict(min_cluster_size=2.5), "min_cluster_size"),
    (dict(min_cluster_size=0), "min_cluster_size"),
    (dict(min_cluster_size=True), "min_cluster_size"),
    (dict(min_cluster_size="200"), "min_cluster_size"),
    (dict(min_samples=0), "min_samples"),
    (dict(grid=0), "grid"),
    (dict(device="gpu-magic"), "device"),
    (dict(noise="maybe"), "noise"),
    (dict(fusion="late"), "fusion"),
    (dict(mst="kruskal"), "mst"),
    (dict(max_points=0), "max_points must be None or an integer >= 1, got 0"),
    (dict(max_points=2.5), "max_points"),
    (dict(max_points=True), "max_points"),
    (dict(max_points="16384"), "max_points"),
    (dict(backend="gpu-magic"), "backend must be one of torch, sklearn, hdbscan, got 'gpu-magic'"),
    (dict(backend="hdbscan", cluster_selection_method="top"), "cluster_selection_method must be one of eom, leaf"),
    (dict(backend="hdbscan", cluster_selection_epsilon=-0.1), "cluster_selection_epsilon must be a finite number >= 0"),
    (dict(backend="hdbscan", cluster_selection_epsilon=float("nan")), "cluster_selection_epsilon"),
    (dict(backend="hdbscan", cluster_selection_epsilon="0.1"), "cluster_selection_epsilon"),
    (dict(backend="hdbscan", cluster_selection_epsilon=True), "cluster_selection_epsilon"),
    (dict(cluster_selection_epsilon=0.1), "cluster_selection_epsilon=0.1 needs backend='hdbscan'"),
    (dict(backend="sklearn", cluster_selection_epsilon=0.1), "needs backend='hdbscan'"),
    (dict(score="probability"), "score must be distance or membership"),
    (dict(score="membership"), "score='membership' needs algorithm='hdbscan' and backend='hdbscan'"),
    (dict(algorithm="kmeans", backend="hdbscan", score="membership"), "score='membership' needs"),
])
def test_arguments_are_checked_when_the_clusterer_is_built(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        Clusterer(**arguments)
    assert "\n" not in str(error.value)  # one line


def test_good_arguments_build():
    for arguments in (dict(min_cluster_size=0.05), dict(min_cluster_size=200.0), dict(min_samples=1, grid=64),
                      dict(device="cuda"), dict(device="cpu", mst="prim"), dict(max_points=None), dict(max_points=1),
                      dict(cluster_selection_method="leaf"), dict(backend="sklearn", cluster_selection_method="leaf"),
                      dict(backend="hdbscan", cluster_selection_epsilon=0.2, score="membership")):
        assert isinstance(Clusterer(**arguments), Clusterer)


# ------------------------------------------------------------------ CUDA


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_cuda_clusterer_returns_cpu_results_equal_to_the_cpu():
    maps = torch.stack([feature_map(side=24, seed=s, forged=s != 1, spread=0.4)[0] for s in range(3)])
    cpu = Clusterer(min_cluster_size=20, mst="boruvka")  # the GPU's tree, on the CPU (ties resolved alike)
    expected = [cpu(f) for f in maps]
    on_cuda = Clusterer(min_cluster_size=20, device="cuda")  # features on the CPU, moved there
    for (mask, score), (want_mask, want_score) in zip(on_cuda.cluster_batch(maps), expected):
        assert mask.device.type == score.device.type == "cpu"
        assert torch.equal(mask, want_mask) and torch.allclose(score, want_score, atol=1e-5)
    auto = Clusterer(min_cluster_size=20)  # features on CUDA: clustered there
    mask, score = auto(maps[0].cuda())
    assert mask.device.type == score.device.type == "cpu" and torch.equal(mask, expected[0][0])
    masks = auto.cluster_batch(maps.cuda(), splits=None)
    assert all(m.device.type == "cpu" and torch.equal(m, e[0]) for (m, _), e in zip(masks, expected))
    fused = Clusterer(min_cluster_size=20, fusion="union").cluster_batch(torch.cat([maps, maps], 1).cuda(), [32, 32])
    assert all(torch.equal(m, e[0]) for (m, _), e in zip(fused, expected))
    rows = torch.from_numpy(feature_rows(maps[0]))
    labels = cluster_labels(rows, "hdbscan", 20)
    forged, center = forged_from_labels(rows.cuda(), labels)
    assert forged.is_cuda and torch.equal(forged.cpu(), forged_from_labels(rows, labels)[0])
    assert torch.allclose(pristine_distance_score(rows.cuda(), center).cpu(),
                          pristine_distance_score(rows, forged_from_labels(rows, labels)[1]), atol=1e-5)
    grid = Clusterer(min_cluster_size=10, grid=12)(maps[0].cuda())[0]
    assert grid.shape == (12, 12) and grid.device.type == "cpu"


@pytest.mark.parametrize("algorithm", ["kmeans", "bisecting_kmeans", "birch"])
def test_the_k_means_family_has_two_clusters_and_scikit_learns_defaults(algorithm):
    """Paper Table VII: "the number of clusters is set to 2 ... other parameters are default"."""
    from sklearn import cluster
    from sklearn.metrics import adjusted_rand_score

    from focal_pl.clustering.algorithms import cluster_labels

    # one blob: where to split it depends on every parameter (k-means with n_init=3 splits it elsewhere)
    rows = np.random.default_rng(0).normal(0, 1, (400, 4)).astype(np.float32)
    reference = {"kmeans": cluster.KMeans(n_clusters=2, random_state=0),
                 "bisecting_kmeans": cluster.BisectingKMeans(n_clusters=2, random_state=0),
                 "birch": cluster.Birch(n_clusters=2)}[algorithm].fit_predict(rows)
    ours = cluster_labels(rows, algorithm, seed=0)
    assert adjusted_rand_score(reference, ours) == 1.0


def test_cosine_kmeans_partitions_as_the_official_codes_torch_kmeans():
    """The official FOCAL code clusters with torch_kmeans.KMeans(n_clusters=2, CosineSimilarity) at its
    defaults; on maps of two groups ours gives the same partition, and the labelling rule makes the
    smaller group forged as the official code does."""
    from torch_kmeans import CosineSimilarity, KMeans

    from focal_pl.clustering.cosine_kmeans import cosine_kmeans

    for trial in range(6):
        g = torch.Generator().manual_seed(trial)
        base, other = torch.randn(64, generator=g), torch.randn(64, generator=g)
        rows = base + 0.8 * torch.randn(1000, 64, generator=g)
        rows[:200] = other + 0.8 * torch.randn(200, 64, generator=g)
        ours = cosine_kmeans(rows).numpy()
        theirs = KMeans(verbose=False, n_clusters=2, distance=CosineSimilarity)(rows[None], k=2).labels[0].numpy()
        assert (ours == theirs).all() or (ours == 1 - theirs).all(), trial
    features = rows.T.reshape(64, 40, 25)
    mask, _ = Clusterer("cosine_kmeans")(features)
    assert mask.flatten()[:200].all() and not mask.flatten()[200:].any()  # the smaller cluster is forged
