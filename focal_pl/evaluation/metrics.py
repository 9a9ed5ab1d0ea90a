"""Per-image pixel metrics (docs/method.md section 6) and their data-set means as a torchmetrics Metric.

Per image, at threshold 0.5: macro F1 (mean of the forged- and pristine-class F1, the paper's),
forged-class F1 (IMDL-BenCo's), IoU of the forged class. A class absent from both prediction and
truth scores 1 (nothing to find, nothing found), as IoU does. A data set's score is the mean over
its images; the sums are DDP-synced by torchmetrics.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_stat_scores


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1), torch.ones_like(numerator))


def pixel_scores(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """One image's bool/0-1 masks (same shape) -> {"f1", "f1_forged", "f1_pristine",
    "f1_permuted", "iou"}. ``f1_permuted`` is TruFor's: the forged-class F1 of the mask or of its
    inverse, whichever is higher."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and truth {tuple(target.shape)} differ")
    tp, fp, tn, fn, _ = binary_stat_scores(
        pred.flatten().long(), target.flatten().long(), threshold=0.5
    ).double()
    f1_forged = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_pristine = _ratio(2 * tn, 2 * tn + fn + fp)
    f1_inverted = _ratio(2 * fn, 2 * fn + tn + tp)  # the inverse mask's forged-class F1
    return {
        "f1": (f1_forged + f1_pristine) / 2,
        "f1_forged": f1_forged,
        "f1_pristine": f1_pristine,
        "f1_permuted": torch.maximum(f1_forged, f1_inverted),
        "iou": _ratio(tp, tp + fp + fn),
    }


def score_auc(score: Tensor, target: Tensor) -> float:
    """Exact pixel AUC of a uint8 score map (0-255) against a bool truth; NaN when the truth holds
    one class only. Ties count one half, as in scikit-learn's ``roc_auc_score``."""
    if score.dtype != torch.uint8:
        raise ValueError(f"score must be a uint8 map (quantized to 256 levels), got {score.dtype}")
    truth = target.flatten().bool()
    values = score.flatten().long()
    positives = torch.bincount(values[truth], minlength=256).double()
    negatives = torch.bincount(values[~truth], minlength=256).double()
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = torch.cumsum(negatives, 0) - negatives  # negatives strictly below each level
    wins = (positives * below).sum() + 0.5 * (positives * negatives).sum()
    return float(wins / (n_pos * n_neg))


def image_auc(scores: list[float], forged: list[bool]) -> float:
    """AUC of image-level scores (forged = positive); NaN without both kinds of image."""
    from sklearn.metrics import roc_auc_score

    if len(set(forged)) < 2:
        return float("nan")
    return float(roc_auc_score(forged, scores))


SELECTION = "score"  # the model-selection score: (macro F1 + IoU) / 2, as the official code selects
VALIDATION_METRICS = ("f1", "f1_forged", "iou", SELECTION)  # what a validation reports, as ``val/<name>``


class ForgeryLocalizationMetrics(Metric):
    """Means over images of macro F1, forged-class F1 and IoU, and the model-selection ``score``
    (the mean of macro F1 and IoU: the official code's rule for the best checkpoint and the
    learning-rate plateau); ``update`` takes one image or a list."""

    full_state_update = False
    names = ("f1", "f1_forged", "iou")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in self.names:
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor | list[Tensor], target: Tensor | list[Tensor]) -> None:
        preds = pred if isinstance(pred, (list, tuple)) else [pred]
        targets = target if isinstance(target, (list, tuple)) else [target]
        for p, t in zip(preds, targets, strict=True):
            scores = pixel_scores(p.to(self.device), t.to(self.device))
            for name in self.names:
                setattr(self, name, getattr(self, name) + scores[name])
            self.images += 1

    def compute(self) -> dict[str, Tensor]:
        count = self.images.clamp_min(1)
        out = {name: (getattr(self, name) / count).float() for name in self.names}
        out[SELECTION] = (out["f1"] + out["iou"]) / 2
        out["images"] = self.images.float()
        return out
