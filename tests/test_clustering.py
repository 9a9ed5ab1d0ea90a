"""Per-image clustering: the labelling rule, the algorithms, noise handling and mask resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focal_pl.clustering import (
    ALGORITHMS,
    Clusterer,
    cluster_mask,
    forged_from_labels,
    resize_mask,
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


def test_largest_cluster_is_pristine_even_when_forged_pixels_are_numerous():
    features, truth = feature_map()
    inverted, _ = cluster_mask(features, algorithm="kmeans")
    assert torch.equal(inverted, truth)  # the smaller cluster is the forged one
    features2 = torch.cat([features[:, :, :12].flip(2), features[:, :, 12:]], 2)  # same sizes
    assert cluster_mask(features2, algorithm="kmeans")[0].sum() == truth.sum()


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
