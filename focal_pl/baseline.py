"""The traditional baseline of paper Table V: the same extractor with a per-pixel classifier head,
trained with cross-entropy, whose masks come from a threshold instead of clustering.

It reuses ``FocalModule`` whole (optimizer, scheduler, skipped-item counting, NaN check) and plugs
into the same evaluation: its "features" are the one-channel logits and its masker is a
``ThresholdMasker``, so ``ClusterEvaluator``, ``TestReport`` and ``PredictionWriter`` score both
kinds of model alike.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from focal_pl.clustering.masker import Masker
from focal_pl.extractors.base import Extractor
from focal_pl.losses import PixelBCELoss, PixelLoss
from focal_pl.module import FocalModule


class ThresholdMasker(Masker):
    """Logits ``1 x h x w`` -> (forged mask where sigmoid > threshold, sigmoid score), on the host;
    no clustering. A ``Masker`` like ``Clusterer``, so every evaluation path takes it."""

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


class PixelClassifier(FocalModule):
    """Extractor + 1x1 convolution to one logit per feature cell, trained with pixel cross-entropy.

    Args:
        extractor: any extractor of the FOCAL configs (its ``out_dim`` channels feed the head).
        loss: a loss on logits ``B x 1 x h x w``; default ``PixelBCELoss()``.
        threshold: probability above which a cell is forged.
        optimizer, scheduler, monitor, scheduler_interval, compile, channels_last,
            sync_batchnorm: as ``FocalModule``.
    """

    def __init__(
        self,
        extractor: Extractor,
        loss: PixelLoss | None = None,
        threshold: float = 0.5,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None | Literal["plateau"] = "plateau",
        monitor: str = "val/score",
        scheduler_interval: Literal["epoch", "step"] = "step",
        compile: bool | dict[str, Any] = False,
        channels_last: bool = False,
        sync_batchnorm: bool = True,
    ) -> None:
        channels = getattr(extractor, "out_dim", None)
        if not isinstance(channels, int):
            raise ValueError(
                f"{type(extractor).__name__} has no integer out_dim; the classifier head needs its channels"
            )
        super().__init__(
            extractor, loss if loss is not None else PixelBCELoss(), None,
            optimizer, scheduler, monitor, scheduler_interval, compile, channels_last, sync_batchnorm,
        )
        self.clusterer = ThresholdMasker(threshold)
        self.head = nn.Conv2d(channels, 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``B x 1 x h x w`` of a batch of images."""
        return self.head(self.extractor(images))
