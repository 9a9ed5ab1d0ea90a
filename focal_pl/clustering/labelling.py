"""From cluster labels to a forged mask and a per-pixel score (docs/method.md section 4), in torch.

The rule runs where the features are: on a GPU only the labels (N int64) go host -> device, and
the callers bring back the mask and the score. The decisions that need the labels' counts (which
cluster is the largest, is there any cluster, any noise) are taken on the host, where the labels
come from, so the device work has no host sync. NumPy inputs give NumPy outputs (the same numbers
as the former NumPy version: a test compares them).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

NoiseRule = Literal["nearest", "forged", "pristine"]
NOISE_RULES: tuple[str, ...] = ("nearest", "forged", "pristine")


def forged_from_labels(
    rows: Tensor | np.ndarray, labels: Tensor | np.ndarray, noise: NoiseRule = "nearest"
) -> tuple[Tensor, Tensor] | tuple[np.ndarray, np.ndarray]:
    """The largest cluster is pristine, every other cluster forged; no cluster at all = authentic.

    Noise points (label -1) go to the cluster whose center is nearest by cosine (``"nearest"``),
    or are all called forged / pristine. ``rows``: unit features N x C (torch on any device, or
    NumPy); ``labels``: N ints, on the host preferably. Returns (forged bool N, pristine center unit
    C) on the rows' device, as NumPy if ``rows`` is NumPy. Ties for the largest cluster go to the
    smallest label, ties for the nearest center to the first cluster (as ``np.argmax`` does).
    """
    if noise not in NOISE_RULES:
        raise ValueError(f"noise must be 'nearest', 'forged' or 'pristine', got {noise!r}")
    as_numpy = isinstance(rows, np.ndarray)
    x = torch.as_tensor(rows)
    host = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    host = host.astype(np.int64, copy=False)
    clusters, sizes = np.unique(host[host >= 0], return_counts=True)
    if clusters.size == 0:
        forged, center = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device), _unit(x.mean(0))
        return (forged.numpy(), center.numpy()) if as_numpy else (forged, center)
    pristine = int(np.argmax(sizes))  # index into clusters
    # the cluster index of each point (-1 noise), the one host -> device copy
    index = torch.as_tensor(np.where(host >= 0, np.searchsorted(clusters, host), -1), device=x.device)
    forged = (index >= 0) & (index != pristine)
    noisy = bool((host < 0).any())
    if noise == "nearest" and noisy:
        centers = _centers(x, index, torch.as_tensor(sizes))
        nearest = (x @ centers.T).argmax(1)
        forged = torch.where(index < 0, nearest != pristine, forged)
        center = centers[pristine]
    else:
        if noise == "forged" and noisy:
            forged = forged | (index < 0)
        members = (index == pristine).to(x.dtype)
        center = _unit(members @ x / float(sizes[pristine]))
    return (forged.cpu().numpy(), center.cpu().numpy()) if as_numpy else (forged, center)


def pristine_distance_score(rows: Tensor | np.ndarray, center: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Cosine distance of each feature to the pristine center, scaled to [0, 1] within the image
    (all zeros when every distance is the same); NumPy in, NumPy out."""
    as_numpy = isinstance(rows, np.ndarray)
    x = torch.as_tensor(rows)
    distance = 1.0 - x @ torch.as_tensor(center, device=x.device, dtype=x.dtype)
    low, high = distance.min(), distance.max()
    span = high - low
    score = torch.where(span < 1e-12, torch.zeros_like(distance), (distance - low) / span.clamp_min(1e-12))
    return score.cpu().numpy() if as_numpy else score


def _centers(x: Tensor, index: Tensor, sizes: Tensor) -> Tensor:
    """Unit mean of each cluster's rows, K x C, by one-hot matrix product (deterministic, no sync)."""
    k = sizes.numel()
    onehot = (index[:, None] == torch.arange(k, device=x.device)[None, :]).to(x.dtype)
    sums = onehot.T @ x
    return _unit(sums / sizes.to(device=x.device, dtype=x.dtype)[:, None])


def _unit(v: Tensor) -> Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-12)
