"""The run's record of its validations (``metrics.json``) and the validation pictures.

The module validates by itself (it clusters every validation image and logs ``val/f1``,
``val/f1_forged``, ``val/iou`` and the selection score ``val/score``); this callback keeps what a
run folder shows of it: the untrained model's score (Lightning drops what is logged during the
sanity check), every validation, the best and the final one, and image / truth / prediction /
score-map strips of the first validation images.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.data.batch import Batch
from focal_pl.evaluation.masks import resize_mask
from focal_pl.evaluation.metrics import VALIDATION_METRICS, pixel_scores
from focal_pl.evaluation.pictures import save_rgb, side_by_side
from focal_pl.evaluation.scoring import Clustered
from focal_pl.files.atomic import write_atomic
from focal_pl.training.runs import model_step, run_dir, safe_stem

log = logging.getLogger(__name__)


def empty_record() -> dict[str, Any]:
    """The metrics record before any validation: untrained score, every validation, the best."""
    return {"untrained": None, "history": [], "best": None, "final": None, "extractor": None}


def describe_extractor(extractor: Any) -> dict[str, Any]:
    """The extractor's class and parameter count, as every record and summary gives them."""
    count = extractor.parameter_count() if hasattr(extractor, "parameter_count") else \
        sum(p.numel() for p in extractor.parameters())
    return {"class": type(extractor).__name__, "parameters": int(count)}


class ValidationPictures:
    """Draws up to ``count`` strips per validation (rank 0's first images that have a truth) into
    ``<run>/val_images/untrained`` or ``<run>/val_images/stepNNNNNNN``, and hands them to loggers."""

    def __init__(self, count: int = 8) -> None:
        if count < 0:
            raise ValueError(f"evaluation.save_images must be >= 0, got {count}")
        self.count = count
        self.strips: list[tuple[Any, str]] = []

    def start(self) -> None:
        self.strips = []

    @property
    def full(self) -> bool:
        return len(self.strips) >= self.count

    @staticmethod
    def folder(run: Path, trainer: L.Trainer) -> Path:
        tag = "untrained" if trainer.sanity_checking else f"step{trainer.global_step:07d}"
        return run / "val_images" / tag

    def add(self, run: Path, trainer: L.Trainer, pl_module: L.LightningModule, batch: Batch,
            clustered: Clustered) -> None:
        """Draw this batch's images while fewer than ``count`` were drawn (rank 0 only)."""
        if not trainer.is_global_zero or self.full:
            return
        for i, item in enumerate(pl_module.scorer.score(batch, clustered)):
            if self.full or not item.result.truth:
                continue
            truth = batch.mask_full[i]
            numbers = pixel_scores(item.image_mask, truth)
            image = batch.image[i]
            size = tuple(image.shape[-2:])
            folder = self.folder(run, trainer)
            folder.mkdir(parents=True, exist_ok=True)
            caption = f"{batch.name[i]}  macro F1 {numbers['f1']:.3f}  IoU {numbers['iou']:.3f}"
            strip = side_by_side(image, resize_mask(truth, size), resize_mask(item.image_mask, size),
                                 item.image_score_map, caption=caption)
            save_rgb(folder / f"{len(self.strips):02d}_{safe_stem(str(batch.name[i]))}.png", strip)
            self.strips.append((strip, caption))

    def log(self, trainer: L.Trainer) -> None:
        """Loggers that take images (W&B) get this validation's strips (rank 0)."""
        if not self.strips or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/examples", images=[p for p, _ in self.strips],
                                 caption=[c for _, c in self.strips], step=trainer.global_step)


class ValidationRecord(Callback):
    """Keeps the run's record in ``metrics.json``: the untrained model's scores (the sanity check of
    a fresh run; ``trainer.num_sanity_val_steps: -1`` scores the whole validation set), every
    validation, the best (by ``score``, the mean of macro F1 and IoU) and the final one, the
    extractor's size and the run folder; gives loggers the untrained score as step 0; draws the
    first ``save_images`` validation images (``ValidationPictures``).

    Args:
        save_images: how many validation images to draw per validation (rank 0's first ones).
        metrics_file: name of the JSON file in the run folder, or an absolute path; None writes none.
    """

    def __init__(self, save_images: int = 8, metrics_file: str | None = "metrics.json") -> None:
        self.pictures = ValidationPictures(save_images)
        self.save_images = save_images
        self.metrics_file = metrics_file
        self.record: dict[str, Any] = empty_record()
        self.run_dir = Path(".")
        self._started = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.run_dir = run_dir(trainer)  # collective under DDP: here, where every rank is
        self.record["extractor"] = describe_extractor(pl_module.extractor)

    def metrics_path(self) -> Path | None:
        """Where ``metrics.json`` goes (None when switched off)."""
        if not self.metrics_file:
            return None
        path = Path(self.metrics_file)
        return path if path.is_absolute() else self.run_dir / path

    # ---------------------------------------------------------------- hooks

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.record["history"] or self.record["untrained"]:  # resumed: the file says what the checkpoint holds
            self._write()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit":  # `validate` reports its own pass, not a checkpoint's history
            self.record = {**empty_record(), "extractor": self.record.get("extractor")}
        self.pictures.start()
        self._started = time.perf_counter()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if isinstance(outputs, Clustered):
            self.pictures.add(self.run_dir, trainer, pl_module, batch, outputs)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = dict(getattr(pl_module, "validation_scores", {}))
        if not values:
            return
        values["cluster_seconds"] = time.perf_counter() - self._started
        entry = {"epoch": trainer.current_epoch, "step": model_step(trainer, pl_module), **values}
        if trainer.sanity_checking:
            if trainer.global_step == 0:  # a resumed run's sanity check is no untrained score
                self.record["untrained"] = entry
                self._log_untrained(trainer, values)
                log.info("untrained model: F1 %.4f over %d images", values["f1"], values["images"])
        else:
            if trainer.state.fn == "fit":
                self.record["history"].append(entry)
            best = self.record["best"]
            if best is None or entry["score"] > best.get("score", -1.0):
                self.record["best"] = entry
            self.record["final"] = entry
            self.pictures.log(trainer)
        self._write()

    @rank_zero_only
    def _log_untrained(self, trainer: L.Trainer, values: dict[str, float]) -> None:
        """Lightning drops what is logged during the sanity check; the untrained score goes to the
        loggers directly, as the first point (step 0) of every validation curve."""
        for logger in trainer.loggers:
            logger.log_metrics({f"val/{k}": values[k] for k in VALIDATION_METRICS}, step=0)

    @rank_zero_only
    def _write(self) -> None:
        path = self.metrics_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**self.record, "run_dir": str(self.run_dir.resolve())}
        write_atomic(path, json.dumps(record, indent=2))

    def state_dict(self) -> dict[str, Any]:
        return {"record": self.record}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.record = {**empty_record(), **state_dict.get("record", {}), "extractor": self.record.get("extractor")}
