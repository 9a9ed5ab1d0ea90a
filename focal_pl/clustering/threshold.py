"""The traditional baseline's masker (paper Table V): a trained classifier's logits thresholded, no
clustering. A ``Masker`` like ``Clusterer``, so validation, test and predict take either."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from focal_pl.clustering.masker import Masker


class ThresholdMasker(Masker):
    """Logits ``1 x h x w`` -> (forged mask where sigmoid > threshold, sigmoid score), on the host."""

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"ThresholdMasker(threshold={self.threshold})"

    def __call__(self, logits: Tensor | np.ndarray, splits: list[int] | None = None) -> tuple[Tensor, Tensor]:
        return self.cluster_batch(torch.as_tensor(logits)[None], splits)[0]

    def cluster_batch(self, logits: Tensor, splits: list[int] | None = None) -> list[tuple[Tensor, Tensor]]:
        """Logits ``B x 1 x h x w`` (any device) -> one (mask, score) per image, on the host."""
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError(f"a pixel classifier's output must be B x 1 x h x w, got shape {tuple(logits.shape)}")
        cut = math.log(self.threshold / (1.0 - self.threshold))
        logits = logits.detach().float()
        masks, scores = (logits[:, 0] > cut).cpu(), torch.sigmoid(logits[:, 0]).cpu()
        return list(zip(masks, scores))
