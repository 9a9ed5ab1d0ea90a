"""Cosine k-means with 2 clusters, as the official FOCAL code clusters (``torch_kmeans.KMeans(
n_clusters=2, distance=CosineSimilarity)`` at its defaults: random initial centers drawn from the
points, 8 restarts, at most 100 rounds, tolerance 1e-4, the restart of the lowest inertia kept).
Spherical: each center is its points' mean direction; a point joins the center it is most similar
to. On the rows' device (the official code clusters on the GPU)."""

from __future__ import annotations

import torch
from torch import Tensor


def cosine_kmeans(rows: Tensor, k: int = 2, restarts: int = 8, max_iter: int = 100, tol: float = 1e-4,
                  seed: int = 123) -> Tensor:
    """Labels 0..k-1 of ``rows`` N x C (any device; normalized here), long, on the rows' device."""
    points = torch.nn.functional.normalize(rows.float(), dim=1)
    n = points.shape[0]
    if n <= k:
        return torch.arange(n, device=points.device) % k
    generator = torch.Generator(device="cpu").manual_seed(seed)
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        start = torch.randperm(n, generator=generator)[:k].to(points.device)
        centers = points[start]
        previous = float("inf")
        for _ in range(max_iter):
            similarity = points @ centers.T
            labels = similarity.argmax(dim=1)
            inertia = float((1 - similarity.gather(1, labels[:, None])).sum())
            moved = torch.zeros_like(centers).index_add_(0, labels, points)
            empty = moved.norm(dim=1) == 0  # a center without points keeps its place
            centers = torch.where(empty[:, None], centers, torch.nn.functional.normalize(moved, dim=1))
            if abs(previous - inertia) <= tol * max(abs(previous), 1e-12):
                break
            previous = inertia
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best
