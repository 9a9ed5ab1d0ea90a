"""The peers' metric formulas as their evaluation code states them (read in grip-unina/TruFor
``test_docker/metrics.py`` and scu-zjz/IMDLBenCo ``IMDLBenCo/evaluation/F1.py``), written here
independently of focal-pl's implementation and as directly as the formulas read: sort and cumulate
for TruFor's best threshold, scikit-learn's confusion matrix for its fixed threshold, precision and
recall with IMDL-BenCo's epsilons. The tests compare focal-pl's columns with these."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage
from sklearn.metrics import confusion_matrix


def trufor_truths(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept pristine, kept forged): the truth's 15 x 15 erosion is forged, outside its 11 x 11
    dilation pristine."""
    gt = gt.astype(bool)
    return np.logical_not(ndimage.maximum_filter(gt, size=11)), ndimage.minimum_filter(gt, size=15)


def trufor_f1_best(score: np.ndarray, gt: np.ndarray) -> float:
    """Every distinct value of the kept pixels as the threshold (``> value`` is forged), the best F1 of
    the map or of its inverse."""
    gt0, gt1 = (g.ravel().astype(np.float64) for g in trufor_truths(gt))
    values = score.ravel().astype(np.float64)
    order = np.argsort(values, kind="stable")
    order = order[(gt0[order] + gt1[order]) > 0]
    if not len(order):
        return math.nan
    values, gt0, gt1 = values[order], gt0[order], gt1[order]
    tn, fn = np.cumsum(gt0), np.cumsum(gt1)
    fp, tp = gt0.sum() - tn, gt1.sum() - fn
    last = np.append(values[1:] > values[:-1], True)  # the last pixel of each distinct value
    tp, fp, fn, tn = tp[last], fp[last], fn[last], tn[last]
    f1 = 2 * tp / np.maximum(2 * tp + fn + fp, 1e-32)
    f1_inverse = 2 * fn / np.maximum(2 * fn + tp + tn, 1e-32)
    return float(max(f1.max(), f1_inverse.max()))


def trufor_f1_fixed(mask: np.ndarray, gt: np.ndarray) -> float:
    """The mask on the kept pixels; NaN where the confusion matrix is not 2 x 2 (TruFor's exception)."""
    gt0, gt1 = trufor_truths(gt)
    keep = (gt0 | gt1).ravel()
    try:
        with warnings.catch_warnings():  # scikit-learn says when the matrix is 1 x 1: TruFor's NaN case
            warnings.simplefilter("ignore")
            cm = confusion_matrix(gt.ravel().astype(np.uint8)[keep], mask.ravel().astype(np.uint8)[keep])
        tn, fn, fp, tp = (float(x) for x in (cm[0, 0], cm[1, 0], cm[0, 1], cm[1, 1]))
    except IndexError:
        return math.nan
    return float(max(2 * tp / max(2 * tp + fn + fp, 1e-32), 2 * fn / max(2 * fn + tp + tn, 1e-32)))


def benco_f1(mask: np.ndarray, gt: np.ndarray, mode: str = "origin") -> float:
    """IMDL-BenCo's PixelF1 of one image at 0.5: precision, recall and F1 with 1e-8 epsilons;
    ``double``: the larger of the mask's and of the inverted mask's."""
    pred, truth = (mask > 0.5).astype(np.float64), gt.astype(np.float64)

    def f1(tp: float, tn: float, fp: float, fn: float) -> float:
        precision, recall = tp / (tp + fp + 1e-8), tp / (tp + fn + 1e-8)
        return 2 * precision * recall / (precision + recall + 1e-8)

    tp, tn = float((pred * truth).sum()), float(((1 - pred) * (1 - truth)).sum())
    fp, fn = float((pred * (1 - truth)).sum()), float(((1 - pred) * truth).sum())
    return f1(tp, tn, fp, fn) if mode == "origin" else max(f1(tp, tn, fp, fn), f1(fn, fp, tn, tp))
