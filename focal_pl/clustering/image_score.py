"""Image-level detection from one image's features (docs/method.md section 6, paper Table IV).

``heterogeneity``: the paper scores an image by the normalized mutual information between local
feature distributions. Our reading: quantize the image's unit features into ``codes`` words
(k-means), cut the map into ``grid`` x ``grid`` windows, and take the NMI between window and word.
A homogeneous (authentic) image spreads every word over every window (NMI near 0); a forged region
concentrates its own words in a few windows (NMI up). ``forged_share``: the predicted mask's share.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from focal_pl.clustering.core import feature_rows

ImageScore = Literal["heterogeneity", "forged_share"]


def heterogeneity(features: Tensor | np.ndarray, grid: int = 4, codes: int = 8, seed: int = 0) -> float:
    """NMI between the window of each feature and its k-means word, in [0, 1]."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    h, w = features.shape[-2:]
    rows = feature_rows(features)
    k = min(codes, rows.shape[0])
    if k < 2:
        return 0.0
    words = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(rows)
    ys, xs = np.divmod(np.arange(h * w), w)
    windows = (ys * grid // h) * grid + xs * grid // w
    return float(normalized_mutual_info_score(windows, words))


def image_score(features: Tensor | np.ndarray, mask: Tensor, method: ImageScore = "heterogeneity") -> float:
    """One number per image, higher = more likely forged."""
    if method == "heterogeneity":
        return heterogeneity(features)
    if method == "forged_share":
        return float(mask.float().mean())
    raise ValueError(f"method must be 'heterogeneity' or 'forged_share', got {method!r}")
