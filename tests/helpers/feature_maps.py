"""FOCAL-like feature maps for the clustering tests and ``benchmarks/clustering_speed.py``: unit rows with a
pristine cluster, forged ones and stray points, and the partition equality both judge by."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score


def focal_like(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    """Unit features like a trained extractor's: a pristine cluster, forged ones (``forged``, ``two_forged``;
    none: ``authentic``), 2% stray points; or ``trained_K``: K tight clusters (one large, the rest 3-15% each)
    in 10% uniform noise."""
    g = np.random.default_rng(seed)
    if kind.startswith("trained_"):
        k = int(kind.split("_")[1])
        centres = g.normal(size=(k, dim))
        shares = np.r_[1.0, g.uniform(0.03, 0.15, k - 1)]
        sizes = np.floor(shares / shares.sum() * n * 0.9).astype(int)
        parts = [c + 0.25 * g.normal(size=(s, dim)) for c, s in zip(centres, sizes)]
        rows = np.concatenate([*parts, g.normal(size=(n - sizes.sum(), dim)) * 3.0])[g.permutation(n)]
    else:
        centres, stray = g.normal(size=(3, dim)), g.normal(size=(n // 50, dim)) * 2.0
        rest = n - len(stray)  # pristine (spread 0.35), then the forged clusters (0.3, 0.5)
        sizes = {"forged": [rest - rest // 8, rest // 8], "authentic": [rest],
                 "two_forged": [rest - rest // 8 - rest // 12, rest // 8, rest // 12]}[kind]
        parts = [c + w * g.normal(size=(s, dim)) for c, w, s in zip(centres, (0.35, 0.3, 0.5), sizes)]
        rows = np.concatenate([*parts, stray])[g.permutation(n)]
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def same_partition(a: np.ndarray, b: np.ndarray, where: np.ndarray | slice = slice(None)) -> bool:
    """The same clusters (up to their names) and the same noise points, on ``where``."""
    a, b = a[where], b[where]
    return adjusted_rand_score(a, b) == 1.0 and np.array_equal(a == -1, b == -1)
