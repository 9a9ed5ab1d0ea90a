"""From cluster labels to a forged mask and a per-pixel score (FOCAL.md section 4)."""

from __future__ import annotations

from typing import Literal

import numpy as np

NoiseRule = Literal["nearest", "forged", "pristine"]


def forged_from_labels(
    rows: np.ndarray, labels: np.ndarray, noise: NoiseRule = "nearest"
) -> tuple[np.ndarray, np.ndarray]:
    """The largest cluster is pristine, every other cluster forged; no cluster at all = authentic.

    Noise points (label -1) go to the cluster whose center is nearest by cosine (``"nearest"``),
    or are all called forged / pristine. Returns (forged bool N, pristine center unit C).
    """
    clusters, sizes = np.unique(labels[labels >= 0], return_counts=True)
    if clusters.size == 0:
        return np.zeros(labels.shape, dtype=bool), _unit(rows.mean(0))
    pristine = clusters[np.argmax(sizes)]
    forged = (labels >= 0) & (labels != pristine)
    noisy = labels < 0
    if noisy.any():
        if noise == "forged":
            forged |= noisy
        elif noise == "nearest":
            centers = np.stack([_unit(rows[labels == c].mean(0)) for c in clusters])
            nearest = clusters[np.argmax(rows[noisy] @ centers.T, axis=1)]
            forged[noisy] = nearest != pristine
        elif noise != "pristine":
            raise ValueError(f"noise must be 'nearest', 'forged' or 'pristine', got {noise!r}")
    return forged, _unit(rows[labels == pristine].mean(0))


def pristine_distance_score(rows: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Cosine distance of each feature to the pristine center, scaled to [0, 1] within the image."""
    distance = 1.0 - rows @ center
    low, high = distance.min(), distance.max()
    if high - low < 1e-12:
        return np.zeros_like(distance)
    return (distance - low) / (high - low)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)
