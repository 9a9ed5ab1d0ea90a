"""The clustering validation callback: every validation image is clustered on the fly and scored."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.atomic import write_atomic
from focal_pl.checkpoints import RunCheckpoint
from focal_pl.evaluation.scoring import Scored, member_splits, score_batch
from focal_pl.masks import Resize, resize_mask
from focal_pl.metrics import ForgeryLocalizationMetrics, pixel_scores
from focal_pl.runs import run_dir, safe_stem
from focal_pl.visualize import save_rgb, side_by_side

log = logging.getLogger(__name__)

VALIDATION_METRICS = (*ForgeryLocalizationMetrics.names, "score")


def empty_record() -> dict[str, Any]:
    """The metrics record before any validation: untrained score, every validation, the best."""
    return {"untrained": None, "history": [], "best": None, "final": None, "extractor": None}


def parameters(count: int) -> str:
    """``88.39 M parameters`` / ``4,520 parameters``."""
    return f"{count / 1e6:.2f} M parameters" if count >= 1e6 else f"{count:,} parameters"


def describe_extractor(extractor: Any) -> dict[str, Any]:
    """The extractor's class and parameter count, as every record and summary gives them."""
    count = extractor.parameter_count() if hasattr(extractor, "parameter_count") else \
        sum(p.numel() for p in extractor.parameters())
    return {"class": type(extractor).__name__, "parameters": int(count)}


def is_final_step(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether the training batch that just ended is the run's last (by max_steps or max_epochs)."""
    if 0 < trainer.max_steps <= trainer.global_step:
        return True
    last_epoch = trainer.max_epochs is not None and trainer.max_epochs > 0 \
        and trainer.current_epoch >= trainer.max_epochs - 1
    return bool(last_epoch and batch_idx + 1 >= trainer.num_training_batches)


class ClusterEvaluator(Callback):
    """Clusters each validation image's features with the module's ``clusterer`` and logs
    ``val/f1`` (macro, the paper's), ``val/f1_forged``, ``val/iou`` and ``val/score`` = mean of F1
    and IoU (the official code's model-selection score): means over images, synced across DDP
    ranks, each rank clustering its own share of the images on the model's device.

    It also writes, to the run folder: ``metrics.json`` with the scores of the untrained model (the
    sanity check of a fresh run; ``trainer.num_sanity_val_steps: -1`` scores the whole validation
    set), every validation, the best and the final one, and the run folder itself; and for the
    first ``save_images`` validation images a PNG of image / truth / prediction per validation.
    A fit whose last step is not a validation step is validated once more at its end.

    Args:
        save_images: how many validation images to draw per validation (rank 0's first ones).
        mask_resize: how the feature-grid mask is brought to the truth's size: nearest or
            bilinear (> 0.5, the official code's way).
        metrics_file: name of the JSON file in the run folder, or an absolute path; None writes none.
        final_validation: validate after the last training step when it was not a validation step.
    """

    def __init__(
        self,
        save_images: int = 8,
        mask_resize: Resize = "nearest",
        metrics_file: str | None = "metrics.json",
        final_validation: bool = True,
    ) -> None:
        if save_images < 0:
            raise ValueError(f"evaluation.save_images must be >= 0, got {save_images}")
        self.save_images = save_images
        self.mask_resize = mask_resize
        self.metrics_file = metrics_file
        self.final_validation = final_validation
        self.metrics = ForgeryLocalizationMetrics()
        self.record: dict[str, Any] = empty_record()
        self._drawn = 0
        self._started = 0.0
        self._run_dir = Path(".")
        self._pictures: list[tuple[Any, str]] = []

    # ---------------------------------------------------------------- where results go

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._run_dir = run_dir(trainer)  # collective under DDP: here, where every rank is
        self.record["extractor"] = describe_extractor(pl_module.extractor)

    def metrics_path(self) -> Path | None:
        """Where ``metrics.json`` goes (None when switched off)."""
        if not self.metrics_file:
            return None
        path = Path(self.metrics_file)
        return path if path.is_absolute() else self._run_dir / path

    def image_dir(self, trainer: L.Trainer) -> Path:
        tag = "untrained" if trainer.sanity_checking else f"step{trainer.global_step:07d}"
        return self._run_dir / "val_images" / tag

    # ---------------------------------------------------------------- hooks

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.record["history"] or self.record["untrained"]:  # resumed: the file says what the checkpoint holds
            self._write(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Lightning validates when asked to stop early: asking at the last step validates it
        if self.final_validation and is_final_step(trainer, batch_idx):
            trainer.should_stop = True

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit":  # `validate` reports its own pass, not a checkpoint's history
            self.record = {**empty_record(), "extractor": self.record.get("extractor")}
        self.metrics = self.metrics.to(pl_module.device)  # synced across ranks where the model is
        self.metrics.reset()
        self._drawn = 0
        self._pictures = []
        self._started = time.perf_counter()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if not outputs or "features" not in outputs:
            return
        scored = score_batch(outputs["features"], pl_module.clusterer, batch,
                             splits=member_splits(pl_module.extractor), mask_resize=self.mask_resize,
                             metrics=self.metrics)
        for i, item in enumerate(scored):
            if trainer.is_global_zero and self._drawn < self.save_images and item.result.truth:
                self._draw(trainer, batch, i, item)

    def _draw(self, trainer: L.Trainer, batch: Any, i: int, item: Scored) -> None:
        truth = batch["mask_full"][i]
        scores = pixel_scores(item.image_mask, truth)
        image = batch["image"][i]
        size = tuple(image.shape[-2:])
        folder = self.image_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        caption = f"{batch['name'][i]}  F1 {scores['f1']:.3f}  IoU {scores['iou']:.3f}"
        strip = side_by_side(image, resize_mask(truth, size), resize_mask(item.image_mask, size), caption=caption)
        save_rgb(folder / f"{self._drawn:02d}_{safe_stem(str(batch['name'][i]))}.png", strip)
        self._pictures.append((strip, caption))
        self._drawn += 1

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {k: float(v) for k, v in self.metrics.compute().items()}
        self.metrics.reset()
        values["score"] = (values["f1"] + values["iou"]) / 2
        values["cluster_seconds"] = time.perf_counter() - self._started
        step = pl_module.model_step() if hasattr(pl_module, "model_step") else trainer.global_step
        entry = {"epoch": trainer.current_epoch, "step": step, **values}
        if trainer.sanity_checking:
            if trainer.global_step == 0:  # a resumed run's sanity check is no untrained score
                self.record["untrained"] = entry
                self._log_untrained(trainer, values)
                log.info("untrained model: F1 %.4f over %d images", values["f1"], values["images"])
        else:
            pl_module.log_dict(
                {f"val/{k}": values[k] for k in VALIDATION_METRICS}, prog_bar=True,
                sync_dist=True,  # already synced; this only tells Lightning so
            )
            if trainer.state.fn == "fit":
                self.record["history"].append(entry)
            best = self.record["best"]
            if best is None or entry["score"] > best.get("score", -1.0):
                self.record["best"] = entry
            self.record["final"] = entry
            self._log_pictures(trainer)
        self._write(trainer)

    @rank_zero_only
    def _log_untrained(self, trainer: L.Trainer, values: dict[str, float]) -> None:
        """Lightning drops what is logged during the sanity check; the untrained score goes to the
        loggers directly, as the first point (step 0) of every validation curve."""
        for logger in trainer.loggers:
            logger.log_metrics({f"val/{k}": values[k] for k in VALIDATION_METRICS}, step=0)

    @rank_zero_only
    def _log_pictures(self, trainer: L.Trainer) -> None:
        """Loggers that take images (W&B) get this validation's image / truth / prediction strips."""
        if not self._pictures:
            return
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/examples", images=[p for p, _ in self._pictures],
                                 caption=[c for _, c in self._pictures], step=trainer.global_step)

    @rank_zero_only
    def _write(self, trainer: L.Trainer) -> None:
        path = self.metrics_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**self.record, "run_dir": str(self._run_dir.resolve())}
        write_atomic(path, json.dumps(record, indent=2))

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        print(self.summary(trainer))

    def summary(self, trainer: L.Trainer) -> str:
        """The before/after lines a person reads at the end of a run (only files that exist)."""
        lines = [f"\nRun folder: {self._run_dir.resolve()}"]
        record = self.record
        if record.get("extractor"):
            lines.append(f"extractor: {record['extractor']['class']}, {parameters(record['extractor']['parameters'])}")
        header = "validation (clustering, image resolution): macro F1 | forged F1 | IoU | images"
        lines.append(header)
        for label, entry in (("untrained", record["untrained"]), ("trained", record["final"]),
                             ("best", record["best"])):
            if entry:
                lines.append(
                    f"  {label:<9} {entry['f1']:.4f} | {entry['f1_forged']:.4f} | "
                    f"{entry['iou']:.4f} | {int(entry['images'])}  (step {entry['step']})"
                )
        if record["final"] is None:
            lines.append("  no validation ran: the run has no validation score")
        callback = next((c for c in trainer.callbacks if isinstance(c, RunCheckpoint)), trainer.checkpoint_callback)
        for label in ("best", "last"):
            ckpt = getattr(callback, f"{label}_model_path", "")
            if ckpt and Path(ckpt).is_file():
                lines.append(f"checkpoint ({label}): {ckpt}")
        path = self.metrics_path()
        if path is not None and path.is_file():
            lines.append(f"metrics: {path}")
        if (self._run_dir / "val_images").is_dir():
            lines.append(f"pictures: {self._run_dir / 'val_images'}")
        skipped = getattr(trainer.lightning_module, "skipped_items", 0)
        if skipped:
            lines.append(f"skipped {skipped} unreadable item(s) on this rank; the warnings above name them")
        return "\n".join(lines)

    def state_dict(self) -> dict[str, Any]:
        return {"record": self.record}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.record = {**empty_record(), **state_dict.get("record", {}), "extractor": self.record.get("extractor")}
