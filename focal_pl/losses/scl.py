"""Soft coefficients (fuzzy c-means from the ground truth) and the soft contrastive loss (SCL).

The math is docs/method.md sections 1-2. Everything is batched over images (``B x N x C`` features,
``B x 2 x N`` coefficients) and costs O(N C) per image: no N x N similarity matrix is formed.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.losses.base import PixelLoss

from focal_pl.losses.pixels import flatten_pixels, zero_loss

EPS = 1e-8


def fcm_centers(features: Tensor, weights: Tensor, fuzziness: float) -> Tensor:
    """Eq. 7: ``c_k = sum_i w_ki^m f_i / sum_i w_ki^m`` for ``B x N x C`` features, ``B x 2 x N`` W."""
    wm = weights.pow(fuzziness)
    return (wm @ features) / wm.sum(-1, keepdim=True).clamp_min(EPS)


def squared_distances(features: Tensor, centers: Tensor) -> Tensor:
    """``||f_i - c_k||^2`` as ``B x 2 x N`` through one matrix product (no ``B x 2 x N x C`` tensor)."""
    sq = (features * features).sum(-1)[:, None, :] + (centers * centers).sum(-1)[..., None]
    return (sq - 2.0 * centers @ features.transpose(1, 2)).clamp_min(0.0)


def fcm_objective(features: Tensor, weights: Tensor, centers: Tensor, fuzziness: float) -> Tensor:
    """Eq. 1: ``J = sum_k sum_i w_ki^m ||f_i - c_k||^2``, one value per image (``B``)."""
    return (weights.pow(fuzziness) * squared_distances(features, centers)).sum((-2, -1))


def fcm_memberships(features: Tensor, centers: Tensor, fuzziness: float) -> Tensor:
    """Eq. 5: ``w_ki = 1 / sum_j (d_ki / d_ji)^(2/(m-1))``, ``d = ||f - c|| + eps``.

    Written as a softmax over k of ``-(2/(m-1)) log d_ki``: the same value, stable for any m > 1.
    """
    d = squared_distances(features, centers).sqrt() + EPS
    return torch.softmax(-(2.0 / (fuzziness - 1.0)) * d.log(), dim=1)


@torch.no_grad()
def _coefficients(
    features: Tensor, labels: Tensor, fuzziness: float, max_iter: int, tol: float
) -> tuple[Tensor, Tensor]:
    """Batched section-1 iterations from the hard start; returns (W ``B x 2 x N``, centers ``B x 2 x C``)."""
    y = labels.to(features.dtype)
    weights = torch.stack((1.0 - y, y), dim=1)
    active = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    previous = None
    for _ in range(max_iter):
        centers = fcm_centers(features, weights, fuzziness)
        objective = fcm_objective(features, weights, centers, fuzziness)
        if previous is not None:
            active &= (previous - objective).abs() > tol * previous.abs()
            if not bool(active.any()):
                break
        updated = fcm_memberships(features, centers, fuzziness)
        weights = torch.where(active[:, None, None], updated, weights)
        previous = objective
    return weights, fcm_centers(features, weights, fuzziness)


def soft_coefficients(
    features: Tensor,
    labels: Tensor,
    fuzziness: float = 2.0,
    max_iter: int = 1,
    tol: float = 1e-4,
) -> tuple[Tensor, Tensor]:
    """Soft coefficients of one image: features ``N x C`` (L2-normalized), labels ``N`` in {0, 1}.

    Returns ``(W, centers)``: ``W`` is ``2 x N`` (row 0 pristine, row 1 forged, columns sum to 1),
    ``centers`` is ``2 x C`` from eq. 7 on the final W. Runs without gradient.
    """
    _check_fuzziness(fuzziness, max_iter)
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"expected features N x C and labels N, got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    weights, centers = _coefficients(features[None].float(), labels[None], fuzziness, max_iter, tol)
    return weights[0], centers[0]


def _check_fuzziness(fuzziness: float, max_iter: int) -> None:
    if not fuzziness > 1.0:
        raise ValueError(f"fuzziness m must be > 1 (eq. 5 divides by m - 1), got {fuzziness}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")


def contrastive_from_coefficients(
    features: Tensor, weights: Tensor, centers: Tensor, temperature: float
) -> Tensor:
    """Eq. 8-9 for fixed W: ``L_0 + L_1`` per image (``B``).

    Query ``f_i`` of class k: positive ``f_i . mu_k`` (mu_k the W-weighted mean of class k, i.e. the
    expectation of ``f_i . f_j`` over its positives), negative ``f_i . c_k'`` (the other class's
    L2-normalized eq.-7 center); ``L_k`` is the W-weighted mean of the per-query NCE terms.
    """
    mass = weights.sum(-1)  # B x 2
    means = (weights @ features) / mass.clamp_min(EPS)[..., None]
    other = F.normalize(centers, dim=-1).flip(1)
    positive = means @ features.transpose(1, 2)  # B x 2 x N
    negative = other @ features.transpose(1, 2)
    per_query = F.softplus((negative - positive) / temperature)  # -log(e^p / (e^p + e^n))
    per_class = (weights * per_query).sum(-1) / mass.clamp_min(EPS)
    return per_class.sum(-1)


class SoftContrastiveLoss(PixelLoss):
    """FOCAL's soft contrastive loss, computed image by image (eq. 10) or over the pooled batch.

    Args:
        temperature: tau of eq. 8-9.
        fuzziness: m of eq. 1-7.
        soft: False uses hard W (the ground truth), i.e. no coefficient optimization.
        coefficients: ``"fcm"`` uses W of eq. 5 as it comes (the paper read literally: every pixel
            weighs in both classes); ``"within_class"`` keeps each pixel only in its ground-truth
            class, weighted by its coefficient for that class (docs/method.md, "Which W the loss uses").
        scope: ``"image"`` (eq. 10) or ``"batch"`` (all pixels of the batch pooled as one image).
        max_iter, tol: stopping rule of the coefficient rounds.
        warmup_steps: use hard W while ``step < warmup_steps``; a value in (0, 1) is a fraction of
            the run's training steps (FocalModule resolves it when fitting starts). The training
            loop sets ``step``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        fuzziness: float = 2.0,
        soft: bool = True,
        coefficients: Literal["fcm", "within_class"] = "within_class",
        scope: Literal["image", "batch"] = "image",
        max_iter: int = 1,
        tol: float = 1e-4,
        warmup_steps: float = 0,
    ) -> None:
        super().__init__()
        _check_fuzziness(fuzziness, max_iter)
        if coefficients not in ("fcm", "within_class"):
            raise ValueError(f"coefficients must be 'fcm' or 'within_class', got {coefficients!r}")
        if scope not in ("image", "batch"):
            raise ValueError(f"scope must be 'image' or 'batch', got {scope!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if warmup_steps < 0 or (warmup_steps >= 1 and not float(warmup_steps).is_integer()):
            raise ValueError(f"warmup_steps must be a step count or a fraction in (0, 1), got {warmup_steps}")
        self.temperature = temperature
        self.fuzziness = fuzziness
        self.soft = soft
        self.coefficients = coefficients
        self.scope = scope
        self.max_iter = max_iter
        self.tol = tol
        self.warmup_steps = warmup_steps
        self.warmup_until = int(warmup_steps) if warmup_steps >= 1 or warmup_steps == 0 else 0
        self.step = 0

    def set_total_steps(self, total: int) -> None:
        """Resolve a fractional ``warmup_steps`` against the run's number of training steps."""
        if 0 < self.warmup_steps < 1:
            self.warmup_until = int(round(self.warmup_steps * total))

    def set_step(self, step: int) -> None:
        """The training step, for the hard-label warm-up."""
        self.step = step

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, fuzziness={self.fuzziness}, soft={self.soft}, "
            f"coefficients={self.coefficients!r}, scope={self.scope!r}, max_iter={self.max_iter}, "
            f"warmup_steps={self.warmup_steps}"
        )

    def uses_soft_weights(self) -> bool:
        """Whether this call uses soft W (False during the hard-label warm-up)."""
        return self.soft and self.step >= self.warmup_until

    def coefficients_for(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """W (no gradient) and centers (with gradient through the features) for ``B x N x C``."""
        if self.uses_soft_weights():
            weights, _ = _coefficients(
                features.detach(), labels, self.fuzziness, self.max_iter, self.tol
            )
            if self.coefficients == "within_class":
                y = labels.to(weights.dtype)
                weights = weights * torch.stack((1.0 - y, y), dim=1)
        else:
            y = labels.to(features.dtype)
            weights = torch.stack((1.0 - y, y), dim=1)
        return weights, fcm_centers(features, weights, self.fuzziness)

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:
        """Features ``B x C x h x w`` (any scale), masks ``B x 1 x H x W`` in {0, 1} -> scalar."""
        device_type = features.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            f, labels = flatten_pixels(features, masks)
            if self.scope == "batch":
                f, labels = f.reshape(1, -1, f.shape[-1]), labels.reshape(1, -1)
            forged = labels.sum(-1)
            valid = (forged > 0) & (forged < labels.shape[-1])
            if not bool(valid.any()):
                return zero_loss(features)
            f, labels = f[valid], labels[valid]
            weights, centers = self.coefficients_for(f, labels)
            return contrastive_from_coefficients(f, weights, centers, self.temperature).mean()
