"""Per-image pixel metrics (FOCAL.md section 6) and their data-set means as a torchmetrics Metric.

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
    """One image's bool/0-1 masks (same shape) -> {"f1", "f1_forged", "f1_pristine", "iou"}."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and truth {tuple(target.shape)} differ")
    tp, fp, tn, fn, _ = binary_stat_scores(
        pred.flatten().long(), target.flatten().long(), threshold=0.5
    ).double()
    f1_forged = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_pristine = _ratio(2 * tn, 2 * tn + fn + fp)
    return {
        "f1": (f1_forged + f1_pristine) / 2,
        "f1_forged": f1_forged,
        "f1_pristine": f1_pristine,
        "iou": _ratio(tp, tp + fp + fn),
    }


class ForgeryLocalizationMetrics(Metric):
    """Means over images of macro F1, forged-class F1 and IoU; ``update`` takes one image or a list."""

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
        out["images"] = self.images.float()
        return out
