"""The traditional baseline (paper Table V): pixel classifier head, cross-entropy, threshold."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from focal_pl.clustering import ThresholdMasker
from focal_pl.module import PixelClassifier
from focal_pl.data.batch import Batch
from focal_pl.cli.lightning import run_lightning
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import PixelBCELoss
from focal_pl.losses.targets import downsample_mask
from focal_pl.evaluation.metrics import pixel_scores

from helpers.paths import TINY
BASELINE = ["--model=focal_pl.module.PixelClassifier", "--model.init_args.loss=focal_pl.losses.PixelBCELoss"]


def bright_square_batch(n: int = 4, side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images whose forged square is brighter: a cue a per-pixel classifier can learn."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, side, side, generator=g) * 0.5
    masks = torch.zeros(n, 1, side, side)
    for i in range(n):
        y, x = (torch.randint(0, side // 2, (2,), generator=g)).tolist()
        masks[i, :, y:y + side // 2, x:x + side // 2] = 1
    return (images + 0.4 * masks).clamp(0, 1), masks


def test_threshold_masker_cuts_the_sigmoid_at_the_threshold():
    logits = torch.linspace(-3, 3, 16).reshape(1, 4, 4)
    mask, score = ThresholdMasker(0.5)(logits)
    assert torch.equal(mask, logits[0] > 0) and torch.allclose(score, torch.sigmoid(logits[0]))
    strict, _ = ThresholdMasker(0.9)(logits)
    assert torch.equal(strict, torch.sigmoid(logits[0]) > 0.9) and strict.sum() < mask.sum()
    with pytest.raises(ValueError, match="1 x h x w"):
        ThresholdMasker()(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="threshold"):
        ThresholdMasker(1.0)


def test_pixel_bce_is_cross_entropy_against_the_mask_on_the_logit_grid():
    logits = torch.randn(2, 1, 8, 8)
    masks = (torch.rand(2, 1, 32, 32) > 0.5).float()
    labels = downsample_mask(masks, (8, 8)).float()
    assert torch.allclose(PixelBCELoss()(logits, masks), F.binary_cross_entropy_with_logits(logits[:, 0], labels))
    weighted = PixelBCELoss(pos_weight=4.0)(logits, masks)
    assert torch.allclose(weighted, F.binary_cross_entropy_with_logits(
        logits[:, 0], labels, pos_weight=torch.tensor(4.0)))
    assert torch.isfinite(PixelBCELoss()(logits.bfloat16(), masks))
    with pytest.raises(ValueError, match="B x 1 x h x w"):
        PixelBCELoss()(torch.randn(2, 3, 8, 8), masks)


def test_pixel_classifier_at_native_resolution_thresholds_its_logits_not_the_features():
    torch.manual_seed(0)
    model = PixelClassifier(ForensicCNN(width=8, depth=4, out_dim=8, stride=4)).eval()
    image = torch.rand(1, 3, 40, 56)
    native = Batch(image=image, name=["a"], size=[(40, 56)], truth=[False], tile=32)
    with torch.no_grad():
        logits = model.features(native)
        whole = model.features(Batch(image=image, name=["a"], size=[(40, 56)], truth=[False]))
    assert logits.shape == (1, 1, 10, 14) and whole.shape == logits.shape  # one logit per cell, both ways
    assert model.clusterer(logits[0])[0].shape == (10, 14)
    small = torch.rand(1, 3, 32, 32)  # one tile: the image itself
    with torch.no_grad():
        one_tile = model.features(Batch(image=small, name=["b"], size=[(32, 32)], truth=[False], tile=32))
    assert torch.allclose(one_tile, model(small), atol=1e-5)


def test_pixel_classifier_learns_a_pixel_cue_and_masks_without_clustering():
    torch.manual_seed(0)
    model = PixelClassifier(ForensicCNN(width=8, depth=4, out_dim=8, stride=4))
    images, masks = bright_square_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = model.loss(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    batch = Batch(image=images, mask=masks, name=["a", "b", "c", "d"], size=[(32, 32)] * 4, truth=[True] * 4,
                  mask_full=[m[0].bool() for m in masks])
    out = model.validation_step(batch, 0)
    assert out.features.shape == (4, 1, 8, 8)
    mask, _ = out.maps[0]  # thresholded logits: the baseline's masker, no clustering
    assert torch.equal(mask, model.clusterer(out.features[0])[0])
    truth = downsample_mask(masks[:1], (8, 8))[0]
    assert pixel_scores(mask, truth)["iou"] > 0.6


def test_pixel_classifier_needs_to_know_the_extractor_channels():
    with pytest.raises(ValueError, match="Sequential has no integer out_dim"):
        PixelClassifier(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_baseline_trains_checkpoints_and_validates_through_the_cli(tmp_path):
    common = ["--config", "demo.yaml", "--config", TINY,
              "--trainer.logger.init_args.save_dir", str(tmp_path), *BASELINE]
    cli = run_lightning(["fit", *common])
    assert isinstance(cli.model, PixelClassifier) and isinstance(cli.model.loss, PixelBCELoss)
    best = cli.trainer.checkpoint_callback.best_model_path
    trained = cli.trainer.checkpoint_callback.best_model_score.item()  # the best val/score
    again = run_lightning(["validate", *common, "--ckpt_path", best])
    assert again.trainer.callback_metrics["val/score"].item() == pytest.approx(trained, abs=1e-6)
    loaded = PixelClassifier.load_from_checkpoint(best, weights_only=True)
    assert isinstance(loaded.clusterer, ThresholdMasker) and loaded.head.in_channels == 16


