"""FocalModule: the extractor trained with a pixel loss; evaluation clusters its features per image.

The module is a thin LightningModule over plain components (extractor, loss, masker). It also
supplies the callbacks it cannot work without (validation by clustering, the test report, the
prediction writer, the run's checkpoints) when the Trainer has none of that type, so that
``L.Trainer().fit(FocalModule(...), datamodule)`` in a user's own script validates, schedules and
checkpoints as the CLI does.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau

from focal_pl.checkpoint_io import read_checkpoint
from focal_pl.clustering import Clusterer, Masker
from focal_pl.data.batch import Batch
from focal_pl.extractors.base import Extractor
from focal_pl.losses import PixelLoss, SoftContrastiveLoss
from focal_pl.noise import quiet
from focal_pl.schedulers import CosineToEnd, ValidationPlateau

quiet()  # Lightning's tips and per-run warnings, for a plain Trainer as for the commands

log = logging.getLogger(__name__)


class FocalModule(L.LightningModule):
    """Wires an extractor, a loss and a clusterer; configs choose each of them.

    Args:
        extractor: images B x 3 x H x W in [0, 1] -> features B x C x h x w.
        loss: pixel loss ``loss(features, masks)``; default the soft contrastive loss.
        clusterer: turns one image's features into a mask at evaluation; default HDBSCAN.
        optimizer: optimizer factory; default Adam with lr 1e-4 (the paper's), fused on a GPU (one
            kernel for all parameters; the same update).
        scheduler: learning-rate scheduler factory, or ``plateau`` (default): halve the lr when
            ``monitor`` has not improved for 3 validations, stepped once per validation (the
            official code's rule, ``ValidationPlateau``). None: constant lr.
        monitor: the validation metric the plateau rule follows: ``val/score`` = mean of macro F1
            and IoU, the official code's.
        scheduler_interval: when Lightning steps a scheduler other than the plateau rule: every
            ``step`` or every ``epoch``.
        compile: ``torch.compile`` the extractor (True, or a dict of ``torch.compile`` arguments,
            e.g. ``{mode: max-autotune}``); the numbers equal eager mode's (tested).
        channels_last: keep the extractor's weights and the input images in channels-last memory
            format (faster convolutions on GPUs, e.g. HRNet).
        sync_batchnorm: under DDP on GPUs, batch norms share their statistics across processes
            (HRNet sees one or a few 1024 px images per GPU); CPU processes keep their own (torch
            has no CPU SyncBatchNorm). Models without batch norm are unaffected.
    """

    def __init__(
        self,
        extractor: Extractor,
        loss: PixelLoss | None = None,
        clusterer: Clusterer | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None | Literal["plateau"] = "plateau",
        monitor: str = "val/score",
        scheduler_interval: Literal["epoch", "step"] = "step",
        compile: bool | dict[str, Any] = False,
        channels_last: bool = False,
        sync_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        self._save_config()
        if loss is not None and not isinstance(loss, PixelLoss):
            raise TypeError(f"loss must be a focal_pl.losses.PixelLoss, got {type(loss).__name__}")
        self.extractor = extractor
        self.loss = loss if loss is not None else SoftContrastiveLoss()
        self.clusterer: Masker = clusterer if clusterer is not None else Clusterer()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self.scheduler_interval = scheduler_interval
        self.compile_options = compile
        self.channels_last = channels_last
        self.sync_batchnorm = sync_batchnorm
        self.skipped_items = 0
        self.trained_steps: int | None = None  # the global step of the checkpoint loaded, if any
        self._reported: set[str] = set()

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

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> FocalModule:
        """Lightning's ``load_from_checkpoint``, after checking the file: a damaged, truncated or
        foreign file raises ``CheckpointError`` naming it instead of loading wrong weights."""
        if isinstance(checkpoint_path, (str, os.PathLike)):
            read_checkpoint(checkpoint_path, mmap=True)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Remember how long the loaded model was trained (validate / test report it)."""
        self.trained_steps = int(checkpoint.get("global_step", 0))

    def model_step(self) -> int:
        """The training step the model is at: the trainer's while fitting, else the checkpoint's."""
        if self._trainer is not None and self.trainer.state.fn == "fit":
            return self.trainer.global_step
        return self.trained_steps if self.trained_steps is not None else self.global_step

    @property
    def trainable(self) -> bool:
        """Whether anything here learns (a fusion of frozen trained extractors does not)."""
        return any(p.requires_grad for p in self.parameters())

    def forward(self, images: Tensor) -> Tensor:
        """Features of a batch of images."""
        return self.extractor(images)

    def features(self, batch: Batch) -> Tensor:
        """Features of an evaluation batch: of its images as they are (resized to the training size),
        or, for a batch at native resolution (``tile``: one full-size image), stitched from
        overlapping tiles of the training size (``focal_pl.extractors.tiles``)."""
        if batch.tile:
            from focal_pl.extractors.tiles import tiled_features

            return torch.cat([tiled_features(self.extractor, image[None], batch.tile) for image in batch.image])
        return self(batch.image)

    # ---------------------------------------------------------------- devices and set-up

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """The one place where data changes device: a ``Batch`` moves its model inputs (``image``,
        ``mask``) to the model's device; truths at full size, names and sizes stay on the host,
        where the scoring and the pictures use them (and where the masker returns its masks)."""
        if not isinstance(batch, Batch):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return batch.to_device(device, channels_last=self.channels_last)

    def configure_model(self) -> None:
        """Batch-norm syncing, memory format and compilation, once the strategy is known (before
        DDP wraps the model)."""
        strategy = self.trainer.strategy if self._trainer is not None else None
        if (self.sync_batchnorm and strategy is not None and self.trainer.world_size > 1
                and strategy.root_device.type == "cuda"):
            self.extractor = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.extractor)
        if self.channels_last:
            self.extractor.to(memory_format=torch.channels_last)
        if self.compile_options and not getattr(self, "_compiled", False):
            options = self.compile_options if isinstance(self.compile_options, dict) else {}
            self.extractor.compile(**options)  # in place: parameter names and checkpoints unchanged
            self._compiled = True

    def configure_callbacks(self) -> list[Callback]:
        """The callbacks this module needs, for each kind the Trainer does not have already."""
        from focal_pl.budget import TrainingBudget
        from focal_pl.checkpoints import RunCheckpoint, is_lightning_default
        from focal_pl.distributed import PeerWatch
        from focal_pl.evaluation import ClusterEvaluator, PredictionWriter, RunSummary, TestReport
        from focal_pl.provenance import Provenance

        present = {type(c) for c in self.trainer.callbacks}
        needed = (ClusterEvaluator, RunSummary, TestReport, PredictionWriter, RunCheckpoint, Provenance, TrainingBudget,
                  *((PeerWatch,) if self.trainer.world_size > 1 else ()))
        added = [kind() for kind in needed if not any(issubclass(p, kind) for p in present)]
        if any(isinstance(c, RunCheckpoint) for c in added):  # the run's checkpoints, not Lightning's default
            self.trainer.callbacks[:] = [c for c in self.trainer.callbacks if not is_lightning_default(c)]
        return added

    # ---------------------------------------------------------------- training

    def on_fit_start(self) -> None:
        total = self.trainer.estimated_stepping_batches
        if total != float("inf"):
            self.loss.set_total_steps(int(total))

    def _usable(self, batch: Batch) -> bool:
        """Count the batch's skipped items and warn once per file (loader workers stay silent, so a
        bad file met in every epoch, or by several workers, is reported once and counted each time)."""
        self.skipped_items += batch.skipped
        for where, reason in batch.problems:
            if where not in self._reported:
                self._reported.add(where)
                log.warning("skipping %s: %s", where, reason)
        return batch.usable

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        usable = self._usable(batch)
        # every step, so that each logged point holds the exact count so far (summed over ranks)
        self.log("data/skipped_items", float(self.skipped_items), reduce_fx="sum", sync_dist=True,
                 batch_size=max(1, len(batch)))
        if not usable:
            log.warning("training batch %d had no readable item; skipped", batch_idx)
            return None
        features = self(batch.image)
        self.loss.set_step(self.global_step)
        loss = self.loss(features, batch.mask)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step} (batch {batch_idx}: "
                f"{', '.join(batch.name)}); lower the learning rate or check these inputs"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(features))
        return loss

    def on_train_end(self) -> None:
        for logger in self.loggers:  # the final count, also when the last step was not a logged one
            logger.log_metrics({"data/skipped_items": float(self.skipped_items)}, step=self.global_step)

    # ---------------------------------------------------------------- evaluation

    def _eval_step(self, batch: Batch, stage: str) -> dict[str, Tensor] | None:
        if not self._usable(batch):
            return None
        features = self.features(batch)
        if self.trainable and not batch.tile:  # no loss for frozen fusions, nor on native-size masks
            loss = self.loss(features, batch.mask)
            self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=len(features))
        return {"features": features.detach()}

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor] | None:
        """Features of a validation batch (``ClusterEvaluator`` clusters and scores them)."""
        return self._eval_step(batch, "val")

    def test_step(
        self, batch: Batch, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor] | None:
        """Features of a test batch (``TestReport`` scores them); one loader per test set."""
        return self._eval_step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor] | None:
        """Features of a batch of images (``PredictionWriter`` clusters and writes them)."""
        if not self._usable(batch):
            return None
        return {"features": self.features(batch).detach()}

    def on_validation_epoch_end(self) -> None:
        """One plateau step per validation, with the score the evaluation callback just logged."""
        if self.trainer.sanity_checking or self.trainer.state.fn != "fit":
            return
        value = self.trainer.callback_metrics.get(self.monitor)
        for config in self.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, ValidationPlateau) and value is not None:
                config.scheduler.step(float(value))

    # ---------------------------------------------------------------- optimization

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self.extractor).__name__} has no trainable parameter (a fusion of "
                             "trained extractors is for test / predict, not fit)")
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(params, lr=1e-4, fused=all(p.is_cuda for p in params) or None)
        else:
            optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        if self.scheduler_factory == "plateau":
            scheduler = ValidationPlateau(optimizer)
        else:
            scheduler = self.scheduler_factory(optimizer)
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler = ValidationPlateau.wrapping(scheduler)
            if isinstance(scheduler, CosineToEnd):
                scheduler.set_total_steps(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}
