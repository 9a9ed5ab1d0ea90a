"""FocalModule: the extractor trained with a pixel loss; evaluation clusters its features per image."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from focal_pl.clustering import Clusterer
from focal_pl.extractors.fusion import FusedExtractor
from focal_pl.losses import SoftContrastiveLoss

log = logging.getLogger(__name__)


class FocalModule(L.LightningModule):
    """Wires an extractor, a loss and a clusterer; configs choose each of them.

    Args:
        extractor: images B x 3 x H x W in [0, 1] -> features B x C x h x w.
        loss: pixel loss ``loss(features, masks)``; default the soft contrastive loss.
        clusterer: turns one image's features into a mask at evaluation; default HDBSCAN.
        optimizer: optimizer factory; default Adam with lr 1e-4 (the paper's).
        scheduler: learning-rate scheduler factory; default halve the lr when ``monitor`` has
            not improved for 3 validations (the official code's plateau rule). None: constant lr.
        monitor: metric the plateau scheduler follows.
        scheduler_interval: ``epoch`` or ``step``; with ``step`` set ``scheduler_frequency`` to the
            trainer's ``val_check_interval`` so the plateau rule sees each validation once.
        scheduler_frequency: scheduler steps every this many intervals.
    """

    def __init__(
        self,
        extractor: nn.Module,
        loss: nn.Module | None = None,
        clusterer: Clusterer | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None | Literal["plateau"] = "plateau",
        monitor: str = "val/f1",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scheduler_frequency: int = 1,
    ) -> None:
        super().__init__()
        self._save_config()
        self.extractor = extractor
        self.loss = loss if loss is not None else SoftContrastiveLoss()
        self.clusterer = clusterer if clusterer is not None else Clusterer()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self.scheduler_interval = scheduler_interval
        self.scheduler_frequency = scheduler_frequency
        self.skipped_items = 0

    def _save_config(self) -> None:
        """Keep the constructor's config in the checkpoint, so ``load_from_checkpoint`` rebuilds the
        module. From the CLI the arguments arrive as their YAML (class_path + init_args); objects
        built in Python are left out (pass them again to ``load_from_checkpoint``), which keeps
        checkpoints loadable with ``weights_only=True``."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters()
        plain = (str, int, float, bool, type(None), dict, list, tuple)
        for key in [k for k, v in self.hparams.items() if not isinstance(v, plain)]:
            del self.hparams[key]

    def forward(self, images: Tensor) -> Tensor:
        """Features of a batch of images."""
        return self.extractor(images)

    # ---------------------------------------------------------------- training

    def on_fit_start(self) -> None:
        total = self.trainer.estimated_stepping_batches
        if total != float("inf"):
            self.loss.set_total_steps(int(total))

    def _usable(self, batch: dict[str, Any]) -> bool:
        skipped = int(batch.get("skipped", 0))
        if skipped:
            self.skipped_items += skipped
            self.log("data/skipped_items", float(self.skipped_items), reduce_fx="max")
        return "image" in batch

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        if not self._usable(batch):
            log.warning("training batch %d had no readable item; skipped", batch_idx)
            return None
        features = self(batch["image"])
        self.loss.set_step(self.global_step)
        loss = self.loss(features, batch["mask"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step} (batch {batch_idx}: "
                f"{', '.join(batch['name'])}); lower the learning rate or check these inputs"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(features))
        return loss

    # ---------------------------------------------------------------- evaluation

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Tensor] | None:
        if not self._usable(batch):
            return None
        features = self(batch["image"])
        if not isinstance(self.extractor, FusedExtractor):  # fused members were trained already
            loss = self.loss(features, batch["mask"])
            self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=len(features))
        return {"features": features.detach()}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor] | None:
        return self._eval_step(batch, "val")

    def test_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor] | None:
        """Features of a test batch (``TestReport`` scores them); one loader per test set."""
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Per image: its name, features, and the forged mask and score map on the feature grid."""
        features = self(batch["image"]).float().cpu()
        splits = getattr(self.extractor, "member_channels", None)
        out = []
        for name, fmap in zip(batch["name"], features):
            mask, score = self.clusterer(fmap, splits)
            out.append({"name": name, "mask": mask, "score": score, "features": fmap})
        return out

    # ---------------------------------------------------------------- optimization

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(params, lr=1e-4)
        else:
            optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        if self.scheduler_factory == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=0.5, patience=3, min_lr=1e-8
            )
        else:
            scheduler = self.scheduler_factory(optimizer)
        config = {
            "scheduler": scheduler,
            "interval": self.scheduler_interval,
            "frequency": self.scheduler_frequency,
        }
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}
