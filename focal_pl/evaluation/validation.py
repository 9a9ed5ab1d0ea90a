"""The clustering validation callback: every validation image is clustered on the fly and scored
with torchmetrics, and the run's record of validations is kept (``metrics.json``)."""

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
from focal_pl.evaluation.pictures import ValidationPictures
from focal_pl.evaluation.scoring import Scorer
from focal_pl.masks import Resize
from focal_pl.metrics import ForgeryLocalizationMetrics
from focal_pl.runs import run_dir

log = logging.getLogger(__name__)

VALIDATION_METRICS = (*ForgeryLocalizationMetrics.names, "score")


def empty_record() -> dict[str, Any]:
    """The metrics record before any validation: untrained score, every validation, the best."""
    return {"untrained": None, "history": [], "best": None, "final": None, "extractor": None}


def describe_extractor(extractor: Any) -> dict[str, Any]:
    """The extractor's class and parameter count, as every record and summary gives them."""
    count = extractor.parameter_count() if hasattr(extractor, "parameter_count") else \
        sum(p.numel() for p in extractor.parameters())
    return {"class": type(extractor).__name__, "parameters": int(count)}


class ClusterEvaluator(Callback):
    """Clusters each validation image's features with the module's ``clusterer`` and logs
    ``val/f1`` (macro, the paper's), ``val/f1_forged``, ``val/iou`` and ``val/score`` = mean of F1
    and IoU (the official code's model-selection score): torchmetrics means over images, synced
    across DDP ranks, each rank clustering its own share of the images on the model's device.

    It keeps the run's record in ``metrics.json``: the untrained model's scores (the sanity check
    of a fresh run; ``trainer.num_sanity_val_steps: -1`` scores the whole validation set), every
    validation, the best and the final one, the extractor's size and the run folder; and draws the
    first ``save_images`` validation images (``ValidationPictures``).

    Args:
        save_images: how many validation images to draw per validation (rank 0's first ones).
        mask_resize: how the feature-grid mask is brought to the truth's size: nearest or
            bilinear (> 0.5, the official code's way).
        metrics_file: name of the JSON file in the run folder, or an absolute path; None writes none.
    """

    def __init__(self, save_images: int = 8, mask_resize: Resize = "nearest",
                 metrics_file: str | None = "metrics.json") -> None:
        self.pictures = ValidationPictures(save_images)
        self.save_images = save_images
        self.mask_resize = mask_resize
        self.metrics_file = metrics_file
        self.metrics = ForgeryLocalizationMetrics()
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
        self.metrics = self.metrics.to(pl_module.device)  # synced across ranks where the model is
        self.metrics.reset()
        self.pictures.start()
        self._started = time.perf_counter()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if not outputs or "features" not in outputs:
            return
        scorer = Scorer.of(pl_module, self.mask_resize)
        scored = scorer.score(batch, scorer.cluster(outputs["features"]))
        for item in scored:
            if item.truth is not None:
                self.metrics.update(item.mask, item.truth)
        self.pictures.add(self.run_dir, trainer, batch, scored)

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
