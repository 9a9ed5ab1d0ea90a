"""The LightningModules: ``FocalModule`` (FOCAL: an extractor trained with a pixel loss, evaluated by
clustering each image's features) and ``PixelClassifier`` (the traditional baseline of Table V).

The module is the thin wiring of plain components: an extractor, a loss, a masker (the clusterer)
and the validation metric. It validates by itself, so a plain ``L.Trainer`` trains, validates,
logs ``val/score`` and steps the plateau rule; the run's files (checkpoints, ``metrics.json``,
pictures, test reports, predictions, ``run.json``) come from callbacks that ``focal_pl.trainer``
and the CLI choose in one place (``focal_pl.engine``).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from focal_pl.clustering import Clusterer, Masker, ThresholdMasker
from focal_pl.data.batch import Batch
from focal_pl.evaluation.masks import Resize
from focal_pl.evaluation.metrics import VALIDATION_METRICS, ForgeryLocalizationMetrics
from focal_pl.evaluation.scoring import Clustered, Resolution, Scorer, member_splits
from focal_pl.extractors.base import Extractor
from focal_pl.files.checkpoint import read_checkpoint
from focal_pl.losses import PixelBCELoss, PixelLoss, SoftContrastiveLoss
from focal_pl.training.schedulers import CosineToEnd

log = logging.getLogger(__name__)

MONITORS = tuple(f"val/{name}" for name in VALIDATION_METRICS)


class FocalModule(L.LightningModule):
    """Wires an extractor, a loss and a clusterer; configs choose each of them.

    Args:
        extractor: images B x 3 x H x W in [0, 1] -> features B x C x h x w.
        loss: pixel loss ``loss(features, masks)``; default the soft contrastive loss.
        clusterer: turns one image's features into a mask at evaluation; default HDBSCAN.
        optimizer: optimizer factory; default Adam with lr 1e-4 (the paper's), fused on a GPU (one
            kernel for all parameters; the same update).
        scheduler: learning-rate scheduler factory, or ``plateau`` (default): halve the lr when
            ``monitor`` has not improved for 3 validations (the official code's rule). A plateau
            rule (this one or a configured ``ReduceLROnPlateau``) steps exactly once per validation,
            on the score that validation computed. None: constant lr.
        monitor: the validation metric the plateau rule follows: ``val/score`` = mean of macro F1
            and IoU, the official code's; or ``val/f1``, ``val/f1_forged``, ``val/iou``.
        scheduler_interval: when Lightning steps a scheduler other than a plateau rule: every
            ``step`` or every ``epoch``.
        compile: ``torch.compile`` the extractor (True, or a dict of ``torch.compile`` arguments,
            e.g. ``{mode: max-autotune}``); the numbers equal eager mode's (tested).
        channels_last: keep the extractor's weights and the input images in channels-last memory
            format (faster convolutions on GPUs, e.g. HRNet).
        sync_batchnorm: under DDP on GPUs, batch norms share their statistics across processes
            (HRNet sees one or a few 1024 px images per GPU); CPU processes keep their own (torch
            has no CPU SyncBatchNorm). Models without batch norm are unaffected.
        val_resolution: where validation scores each mask: ``image`` (each image's own size, the
            default) or ``grid`` (the feature grid, the truth brought there as the official code
            does: what its model selection and plateau rule follow).
        mask_resize: how a grid mask is brought to the image's size: nearest, or bilinear then
            > 0.5 (the official code's way).
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
        val_resolution: Resolution = "image",
        mask_resize: Resize = "nearest",
    ) -> None:
        super().__init__()
        self._save_config()
        if loss is not None and not isinstance(loss, PixelLoss):
            raise TypeError(f"loss must be a focal_pl.losses.PixelLoss, got {type(loss).__name__}")
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)} (what a validation computes), "
                             f"got {monitor!r}")
        if val_resolution not in ("image", "grid"):
            raise ValueError(f"val_resolution must be 'image' or 'grid', got {val_resolution!r}")
        if mask_resize not in ("nearest", "bilinear"):
            raise ValueError(f"mask_resize must be 'nearest' or 'bilinear', got {mask_resize!r}")
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
        self.val_resolution = val_resolution
        self.mask_resize = mask_resize
        self.val_metrics = ForgeryLocalizationMetrics()
        self.validation_scores: dict[str, float] = {}  # the last validation's means (``val/<name>`` logged)
        self.skipped_items = 0
        self.trained_steps: int | None = None  # the global step of the checkpoint loaded, if any
        self._reported: set[str] = set()
        self._compiled = False

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

    def attached_trainer(self) -> L.Trainer | None:
        """The Trainer running this module, None outside one (a module used on its own)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    @property
    def trainable(self) -> bool:
        """Whether anything here learns (a fusion of frozen trained extractors does not)."""
        return any(p.requires_grad for p in self.parameters())

    @property
    def scorer(self) -> Scorer:
        """How this module's features become scored masks (its masker, its fusion's member channels,
        its mask resizing); the evaluation callbacks score test and predict masks with it."""
        return Scorer(self.clusterer, member_splits(self.extractor), self.mask_resize)

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
        trainer = self.attached_trainer()
        if (self.sync_batchnorm and trainer is not None and trainer.world_size > 1
                and trainer.strategy.root_device.type == "cuda"):
            self.extractor = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.extractor)
        if self.channels_last:
            self.extractor.to(memory_format=torch.channels_last)
        if self.compile_options and not self._compiled:
            options = self.compile_options if isinstance(self.compile_options, dict) else {}
            self.extractor.compile(**options)  # in place: parameter names and checkpoints unchanged
            self._compiled = True

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

    def _evaluate(self, batch: Batch, stage: str) -> Clustered | None:
        """An evaluation batch's features, clustered (the device part of scoring); its loss logged."""
        if not self._usable(batch):
            return None
        features = self.features(batch)
        if self.trainable and not batch.tile:  # no loss for frozen fusions, nor on native-size masks
            loss = self.loss(features, batch.mask)
            self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=len(features))
        return self.scorer.cluster(features)

    def validation_step(self, batch: Batch, batch_idx: int) -> Clustered | None:
        """Clusters each validation image and adds its masks to the validation metric."""
        clustered = self._evaluate(batch, "val")
        if clustered is not None:
            for item in self.scorer.score(batch, clustered, self.val_resolution):
                if item.truth is not None:
                    self.val_metrics.update(item.mask, item.truth)
        return clustered

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        """The validation's means (synced across DDP ranks by the metric) as ``val/<name>``, and, in a
        fit, one step of the plateau rule on the metric its ``lr_scheduler_configs`` entry monitors,
        taken here so that the checkpoint of this validation holds it (a resumed run is the
        unbroken one)."""
        self.validation_scores = {k: float(v) for k, v in self.val_metrics.compute().items()}
        self.val_metrics.reset()
        trainer = self.trainer
        if trainer.sanity_checking:  # Lightning drops what is logged here; the record callback keeps it
            return
        self.log_dict({f"val/{k}": self.validation_scores[k] for k in VALIDATION_METRICS}, prog_bar=True,
                      sync_dist=True)  # already synced by the metric; this only tells Lightning so
        if trainer.state.fn != "fit":
            return
        for config in trainer.lr_scheduler_configs:
            if config.reduce_on_plateau:
                config.scheduler.step(self.validation_scores[config.monitor.removeprefix("val/")])

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Lightning's call for each scheduler at its interval. A plateau rule is stepped by the
        validation itself (``on_validation_epoch_end``), once per validation, so Lightning's
        per-interval calls with the last logged value pass it by."""
        if not isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step()

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Clustered | None:
        """A test batch clustered (``TestReport`` scores it at each resolution); one loader per test set."""
        return self._evaluate(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Clustered | None:
        """A batch of images clustered (``PredictionWriter`` scores and writes them)."""
        if not self._usable(batch):
            return None
        return self.scorer.cluster(self.features(batch))

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
        if self.scheduler_factory == "plateau":  # the official code's rule: halve after 3 flat validations
            scheduler = ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3, threshold=1e-4, min_lr=1e-8)
        else:
            scheduler = self.scheduler_factory(optimizer)
        if isinstance(scheduler, ReduceLROnPlateau):  # stepped by each validation, on the monitored metric
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor,
                                                              "interval": "epoch", "strict": False}}
        if isinstance(scheduler, CosineToEnd):
            scheduler.set_total_steps(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}


class PixelClassifier(FocalModule):
    """The traditional baseline of paper Table V: the same extractor with a 1x1 convolution to one
    logit per feature cell, trained with pixel cross-entropy; its masks come from a threshold
    (``ThresholdMasker``) instead of clustering, through the same evaluation as FOCAL's.

    Args:
        extractor: any extractor of the FOCAL configs (its ``out_dim`` channels feed the head).
        loss: a loss on logits ``B x 1 x h x w``; default ``PixelBCELoss()``.
        threshold: probability above which a cell is forged.
        optimizer, scheduler, monitor, scheduler_interval, compile, channels_last,
            sync_batchnorm, val_resolution, mask_resize: as ``FocalModule``.
    """

    def __init__(
        self,
        extractor: Extractor,
        loss: PixelLoss | None = None,
        threshold: float = 0.5,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None | Literal["plateau"] = "plateau",
        monitor: str = "val/score",
        scheduler_interval: Literal["epoch", "step"] = "step",
        compile: bool | dict[str, Any] = False,
        channels_last: bool = False,
        sync_batchnorm: bool = True,
        val_resolution: Resolution = "image",
        mask_resize: Resize = "nearest",
    ) -> None:
        channels = getattr(extractor, "out_dim", None)
        if not isinstance(channels, int):
            raise ValueError(
                f"{type(extractor).__name__} has no integer out_dim; the classifier head needs its channels"
            )
        super().__init__(
            extractor, loss if loss is not None else PixelBCELoss(), None, optimizer=optimizer, scheduler=scheduler,
            monitor=monitor, scheduler_interval=scheduler_interval, compile=compile, channels_last=channels_last,
            sync_batchnorm=sync_batchnorm, val_resolution=val_resolution, mask_resize=mask_resize,
        )
        self.clusterer = ThresholdMasker(threshold)
        self.head = nn.Conv2d(channels, 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``B x 1 x h x w`` of a batch of images."""
        return self.head(self.extractor(images))

    def features(self, batch: Batch) -> Tensor:
        """Logits of an evaluation batch; at native resolution the extractor's stitched tiles go through the
        head too (the 1x1 head commutes with the stitching's weighted mean: the same as tiling both)."""
        features = super().features(batch)
        return self.head(features) if batch.tile else features
