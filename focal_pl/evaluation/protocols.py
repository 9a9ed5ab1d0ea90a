"""The peers' pixel metrics, so that a focal-pl number can stand beside theirs (docs/evaluation.md).

TruFor / SAFIRE (``metrics.py`` of grip-unina/TruFor): per forged image, pixels near the boundary
of the forgery are left out (the truth eroded by a 15 x 15 minimum filter is the forged class, the
outside of its 11 x 11 dilation the pristine class); on what is left, the best F1 over every
threshold of the score map and the F1 of the mask (the fixed 0.5 threshold), each the larger of the
F1 of the map and of its inverse. A set's figure is the mean over forged images, NaN ones left out.
Pooled F1 / IoU: the pixel counts of a set's forged images summed before the ratio (dataset-level).
IMDL-BenCo's per-image forged-class F1 at 0.5 and its ``double`` mode are ``f1_forged`` and
``f1_permuted`` of ``focal_pl.evaluation.metrics``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

ERODE = 15  # TruFor's erodeKernSize: the forged pixels kept
DILATE = 11  # TruFor's dilateKernSize: the pristine pixels kept lie outside this dilation


def boundary_truth(truth: Tensor | np.ndarray, erode: int = ERODE,
                   dilate: int = DILATE) -> tuple[np.ndarray, np.ndarray]:
    """(pristine, forged) bool maps with a band around the forgery's boundary in neither, as TruFor's
    ``extractGTs`` (scipy's minimum / maximum filters, their default border mode)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    gt = np.asarray(truth.cpu().numpy() if isinstance(truth, Tensor) else truth).astype(bool)
    return ~maximum_filter(gt, dilate), minimum_filter(gt, erode)


def _f1(tp: np.ndarray | float, fn: np.ndarray | float, fp: np.ndarray | float) -> np.ndarray:
    return 2 * np.asarray(tp, np.float64) / np.maximum(2 * np.asarray(tp, np.float64) + fn + fp, 1e-32)


def best_threshold_f1(score: Tensor, pristine: np.ndarray, forged: np.ndarray) -> float:
    """TruFor's ``F1_best``: over every value ``t`` the kept pixels take, the F1 of ``score > t`` or of
    its inverse, whichever is higher, at the best ``t``; NaN when no pixel is kept. ``score``: the
    uint8 score map (its 256 levels are the thresholds TruFor would meet in the saved map)."""
    values = np.asarray(score.cpu().numpy() if isinstance(score, Tensor) else score).astype(np.int64).ravel()
    keep0, keep1 = pristine.ravel(), forged.ravel()
    ones = np.bincount(values[keep1], minlength=256).astype(np.float64)
    zeros = np.bincount(values[keep0], minlength=256).astype(np.float64)
    present = (ones + zeros) > 0
    if not present.any():
        return math.nan
    fn, tn = np.cumsum(ones), np.cumsum(zeros)  # at threshold t: score <= t is called pristine
    tp, fp = ones.sum() - fn, zeros.sum() - tn
    f1, inverted = _f1(tp, fn, fp), _f1(fn, tp, tn)
    return float(max(f1[present].max(), inverted[present].max()))


def fixed_threshold_f1(mask: Tensor, truth: Tensor, pristine: np.ndarray, forged: np.ndarray) -> float:
    """TruFor's ``F1_th`` of a mask (the map thresholded at 0.5) on the kept pixels: the larger of the
    F1 of the mask and of its inverse. NaN, as TruFor's confusion matrix makes it, when the kept
    pixels hold a single value in both truth and mask (or none are kept)."""
    keep = (pristine | forged).ravel()
    pred = np.asarray(mask.cpu().numpy()).astype(bool).ravel()[keep]
    gt = np.asarray(truth.cpu().numpy()).astype(bool).ravel()[keep]
    if not keep.any() or len(np.unique(np.concatenate([pred, gt]))) < 2:
        return math.nan
    tp, fp = float(np.sum(pred & gt)), float(np.sum(pred & ~gt))
    fn, tn = float(np.sum(~pred & gt)), float(np.sum(~pred & ~gt))
    return float(max(_f1(tp, fn, fp), _f1(fn, tp, tn)))


def pixel_counts(mask: Tensor, truth: Tensor) -> dict[str, int]:
    """One image's forged-class pixel counts ``tp``, ``fp``, ``fn``, ``tn`` (for the pooled figures)."""
    pred, gt = mask.bool().flatten(), truth.bool().flatten()
    return {"tp": int(torch.sum(pred & gt)), "fp": int(torch.sum(pred & ~gt)), "fn": int(torch.sum(~pred & gt)),
            "tn": int(torch.sum(~pred & ~gt))}


def trufor_scores(mask: Tensor, score: Tensor, truth: Tensor) -> dict[str, float]:
    """One forged image's ``f1_best_trufor`` (of the score map) and ``f1_fixed_trufor`` (of the mask),
    the boundary band left out."""
    pristine, forged = boundary_truth(truth)
    return {"f1_best_trufor": best_threshold_f1(score, pristine, forged),
            "f1_fixed_trufor": fixed_threshold_f1(mask, truth, pristine, forged)}


def peer_scores(mask: Tensor, score: Tensor, truth: Tensor) -> dict[str, float]:
    """Both of the above: an image's peer metrics and its pixel counts."""
    return {**trufor_scores(mask, score, truth), **pixel_counts(mask, truth)}


def pooled(rows: list[dict]) -> dict[str, float]:
    """Dataset-level F1 and IoU of the forged class from the summed pixel counts of ``rows``."""
    tp, fp, fn = (sum(int(r.get(k) or 0) for r in rows) for k in ("tp", "fp", "fn"))
    if not rows or tp + fp + fn == 0:
        return {"f1_pooled": math.nan, "iou_pooled": math.nan}
    return {"f1_pooled": 2 * tp / (2 * tp + fp + fn), "iou_pooled": tp / (tp + fp + fn)}


def balanced_accuracy(scores: list[float], forged: list[bool], threshold: float | None) -> float:
    """The mean of the recalls of forged and authentic images, an image called forged when its score
    exceeds ``threshold`` (TruFor's detection figure, at its 0.5); NaN without both kinds or a threshold."""
    if threshold is None or len(set(forged)) < 2:
        return math.nan
    called = np.asarray(scores) > threshold
    labels = np.asarray(forged, bool)
    return float((called[labels].mean() + (~called[~labels]).mean()) / 2)
