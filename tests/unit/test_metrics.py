"""Pixel metrics against scikit-learn, their edge cases, and the per-image means."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from focal_pl.evaluation.metrics import ForgeryLocalizationMetrics, pixel_scores


@pytest.mark.parametrize("seed", range(5))
def test_pixel_scores_match_scikit_learn(seed):
    g = torch.Generator().manual_seed(seed)
    truth = torch.rand(20, 30, generator=g) < 0.3
    pred = torch.rand(20, 30, generator=g) < 0.4
    scores = pixel_scores(pred, truth)
    t, p = truth.flatten().numpy(), pred.flatten().numpy()
    assert scores["f1"].item() == pytest.approx(f1_score(t, p, average="macro"))
    assert scores["f1_forged"].item() == pytest.approx(f1_score(t, p))
    assert scores["f1_pristine"].item() == pytest.approx(f1_score(~t, ~p))
    assert scores["iou"].item() == pytest.approx(jaccard_score(t, p))


def test_empty_truth_and_prediction_score_one():
    nothing = torch.zeros(8, 8, dtype=torch.bool)
    scores = pixel_scores(nothing, nothing)
    assert scores["f1"] == 1 and scores["iou"] == 1 and scores["f1_forged"] == 1
    # sklearn's macro F1 over the labels present agrees (only "pristine" is present)
    assert f1_score(nothing.flatten(), nothing.flatten(), average="macro") == 1.0
    alarm = nothing.clone()
    alarm[0, 0] = True
    false_alarm = pixel_scores(alarm, nothing)
    assert false_alarm["iou"] == 0 and false_alarm["f1_forged"] == 0
    assert false_alarm["f1"].item() == pytest.approx(f1_score(nothing.flatten(), alarm.flatten(), average="macro"))


def test_metric_is_the_mean_over_images_not_over_pixels():
    metric = ForgeryLocalizationMetrics()
    small_truth = torch.zeros(2, 2, dtype=torch.bool)
    small_truth[0, 0] = True
    big = torch.zeros(50, 50, dtype=torch.bool)
    big[:10] = True
    metric.update(small_truth, small_truth)  # perfect, 4 pixels
    metric.update(torch.zeros_like(big), big)  # all missed, 2500 pixels
    values = metric.compute()
    assert values["images"] == 2
    assert values["iou"].item() == pytest.approx(0.5)
    assert values["f1_forged"].item() == pytest.approx(0.5)
    metric.update([big, big], [big, big])
    assert metric.compute()["images"] == 4


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        pixel_scores(torch.zeros(3, 3), torch.zeros(4, 4))
