"""FocalModule on its own: defaults of the paper, failure on a non-finite loss, skipped items."""

from __future__ import annotations

import pytest
import torch

from focal_pl.clustering import Clusterer
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import InfoNCELoss, PixelLoss, SoftContrastiveLoss
from focal_pl.module import FocalModule


def tiny() -> ForensicCNN:
    return ForensicCNN(width=8, depth=5, out_dim=8)


def batch(n=2, side=32):
    masks = torch.zeros(n, 1, side, side)
    masks[:, :, 4:16, 8:20] = 1
    return {"image": torch.rand(n, 3, side, side), "mask": masks, "name": [f"im{i}" for i in range(n)],
            "skipped": 0}


def test_defaults_are_the_papers():
    module = FocalModule(tiny())
    assert isinstance(module.loss, SoftContrastiveLoss) and module.loss.scope == "image"
    assert isinstance(module.clusterer, Clusterer) and module.clusterer.algorithm == "hdbscan"
    assert module.clusterer.min_cluster_size == 200
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 1e-4
    plateau = scheduler["scheduler"]
    assert isinstance(plateau, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (plateau.mode, plateau.factor, plateau.patience) == ("max", 0.5, 3)
    assert scheduler["monitor"] == "val/f1"


def test_optimizer_and_scheduler_factories_from_config():
    module = FocalModule(tiny(), optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
                         scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 10),
                         scheduler_interval="step")
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["lr_scheduler"]["interval"] == "step" and "monitor" not in config["lr_scheduler"]
    assert isinstance(FocalModule(tiny(), scheduler=None).configure_optimizers(), torch.optim.Adam)


def test_training_step_passes_the_global_step_to_the_loss_warmup():
    loss = SoftContrastiveLoss(warmup_steps=5)
    module = FocalModule(tiny(), loss=loss)
    module.training_step(batch(), 0)
    assert loss.step == 0 and not loss.uses_soft_weights()


class Exploding(PixelLoss):
    def forward(self, features, masks):
        return features.sum() * float("nan")


def test_non_finite_loss_stops_naming_step_and_batch():
    module = FocalModule(tiny(), loss=Exploding())
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 0 \(batch 7: im0, im1\)"):
        module.training_step(batch(), 7)


def test_an_all_skipped_batch_is_counted_and_ignored():
    module = FocalModule(tiny(), loss=InfoNCELoss())
    assert module.training_step({"skipped": 3}, 0) is None
    assert module.skipped_items == 3
    assert torch.isfinite(module.training_step(batch(), 1))


def test_predict_step_clusters_every_image():
    module = FocalModule(tiny(), clusterer=Clusterer("kmeans"))
    module.eval()
    with torch.no_grad():
        out = module.predict_step(batch(3), 0)
    assert [o["name"] for o in out] == ["im0", "im1", "im2"]
    assert out[0]["mask"].shape == (8, 8) and out[0]["score"].shape == (8, 8)


def test_module_built_in_python_checkpoints_without_pickled_objects():
    module = FocalModule(tiny(), clusterer=Clusterer("kmeans"))
    assert "extractor" not in module.hparams and "clusterer" not in module.hparams
    assert module.hparams["monitor"] == "val/f1"
