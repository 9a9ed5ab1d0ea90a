"""Sampled pixel contrastive losses of the ablation (paper Table VI): the original NCE, the official
code's InfoNCE, triplet, DCL, circle.

Each samples up to ``samples`` pristine pixels (the queries) and ``samples`` forged pixels per image
(``scope="image"``) or from the pooled batch (``scope="batch"``), as the official FOCAL code does,
so memory stays bounded whatever the feature map size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.losses.base import PixelLoss

from focal_pl.losses.pixels import flatten_pixels, zero_loss


def _sample(rows: Tensor, count: int) -> Tensor:
    if rows.shape[0] <= count:
        return rows
    return rows[torch.randperm(rows.shape[0], device=rows.device)[:count]]


def _off_diagonal(square: Tensor) -> Tensor:
    """``n x n`` -> ``n x (n-1)`` without the diagonal."""
    n = square.shape[0]
    return square.flatten()[1:].view(n - 1, n + 1)[:, :-1].reshape(n, n - 1)


class SampledPixelLoss(PixelLoss):
    """Base class: pristine queries ``P`` and forged keys ``Q`` sampled per group, then ``pair_loss``."""

    def __init__(self, scope: Literal["image", "batch"] = "image", samples: int = 1000) -> None:
        super().__init__()
        if scope not in ("image", "batch"):
            raise ValueError(f"scope must be 'image' or 'batch', got {scope!r}")
        if samples < 2:
            raise ValueError(f"samples must be >= 2, got {samples}")
        self.scope = scope
        self.samples = samples

    def pair_loss(self, pristine: Tensor, forged: Tensor) -> Tensor:
        """Loss of one group from unit rows: pristine ``p x C`` (p >= 2), forged ``q x C``."""
        raise NotImplementedError

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:
        """Features ``B x C x h x w``, masks ``B x 1 x H x W`` in {0, 1} -> scalar."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            f, labels = flatten_pixels(features, masks)
            if self.scope == "batch":
                f, labels = f.reshape(1, -1, f.shape[-1]), labels.reshape(1, -1)
            losses = []
            for rows, forged in zip(f, labels):
                pristine_rows, forged_rows = rows[~forged], rows[forged]
                if pristine_rows.shape[0] < 2 or forged_rows.shape[0] < 1:
                    continue
                losses.append(
                    self.pair_loss(
                        _sample(pristine_rows, self.samples), _sample(forged_rows, self.samples)
                    )
                )
            if not losses:
                return zero_loss(features)
            return torch.stack(losses).mean()


def _another(rows: Tensor) -> Tensor:
    """For each row, a different row of the same group, drawn at random (``n >= 2``)."""
    n = rows.shape[0]
    shift = torch.randint(1, n, (n,), device=rows.device)
    return rows[(torch.arange(n, device=rows.device) + shift) % n]


class NCELoss(SampledPixelLoss):
    """The original InfoNCE (van den Oord et al. 2018, the FOCAL paper's reference [40], its Table VI
    row "NCE"): each pristine query has ONE positive key, another pristine pixel drawn at random,
    and the sampled forged pixels as negatives; cross-entropy with the positive first. FOCAL's SCL
    uses all the positives instead (the paper credits part of its gain over NCE to that)."""

    def __init__(
        self, temperature: float = 0.1, scope: Literal["image", "batch"] = "image",
        samples: int = 1000,
    ) -> None:
        super().__init__(scope, samples)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def pair_loss(self, pristine: Tensor, forged: Tensor) -> Tensor:
        positive = (pristine * _another(pristine)).sum(1, keepdim=True)
        logits = torch.cat((positive, pristine @ forged.T), dim=1) / self.temperature
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)


class InfoNCELoss(SampledPixelLoss):
    """The official FOCAL code's InfoNCE: positive logit = mean cosine of a pristine query to the
    other sampled pristine features (all the positives, averaged: not the original NCE, see
    ``NCELoss``), negatives = its cosines to the sampled forged ones."""

    def __init__(
        self, temperature: float = 0.1, scope: Literal["image", "batch"] = "image",
        samples: int = 1000,
    ) -> None:
        super().__init__(scope, samples)
        self.temperature = temperature

    def pair_loss(self, pristine: Tensor, forged: Tensor) -> Tensor:
        positive = _off_diagonal(pristine @ pristine.T).mean(1, keepdim=True)
        logits = torch.cat((positive, pristine @ forged.T), dim=1) / self.temperature
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)


class DCLLoss(InfoNCELoss):
    """Decoupled contrastive loss: built on focal-pl's InfoNCE (the official code's: the mean similarity
    to the other pristine pixels as the positive, not the original NCE's pairs), with the positive
    removed from the denominator."""

    def pair_loss(self, pristine: Tensor, forged: Tensor) -> Tensor:
        positive = _off_diagonal(pristine @ pristine.T).mean(1)
        negatives = torch.logsumexp(pristine @ forged.T / self.temperature, dim=1)
        return (negatives - positive / self.temperature).mean()


class TripletLoss(SampledPixelLoss):
    """Triplet margin loss on unit features: anchor and positive pristine, negative forged."""

    def __init__(
        self, margin: float = 0.3, scope: Literal["image", "batch"] = "image", samples: int = 1000
    ) -> None:
        super().__init__(scope, samples)
        self.margin = margin

    def pair_loss(self, pristine: Tensor, forged: Tensor) -> Tensor:
        n = pristine.shape[0]
        positive = _another(pristine)
        negative = forged[torch.randint(0, forged.shape[0], (n,), device=pristine.device)]
        return F.triplet_margin_loss(pristine, positive, negative, margin=self.margin)


class CircleLoss(SampledPixelLoss):
    """Circle loss (Sun et al. 2020) with relaxation ``m`` and scale ``gamma`` on cosine similarities:
    positives are the other pristine samples, negatives the forged ones."""

    def __init__(
        self, margin: float = 0.25, gamma: float = 80.0,
        scope: Literal["image", "batch"] = "image", samples: int = 1000,
    ) -> None:
        super().__init__(scope, samples)
        self.margin = margin
        self.gamma = gamma

    def pair_loss(self, pristine: Tensor, forged: Tensor) -> Tensor:
        m, gamma = self.margin, self.gamma
        s_pos = _off_diagonal(pristine @ pristine.T)
        s_neg = pristine @ forged.T
        alpha_pos = (1.0 + m - s_pos).detach().clamp_min(0.0)
        alpha_neg = (s_neg + m).detach().clamp_min(0.0)
        logit_pos = -gamma * alpha_pos * (s_pos - (1.0 - m))
        logit_neg = gamma * alpha_neg * (s_neg - m)
        return F.softplus(torch.logsumexp(logit_pos, 1) + torch.logsumexp(logit_neg, 1)).mean()
