"""The clustering validation callback: every validation image is clustered on the fly and scored."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.clustering import resize_mask
from focal_pl.metrics import ForgeryLocalizationMetrics, pixel_scores
from focal_pl.runs import run_dir
from focal_pl.visualize import save_rgb, side_by_side

log = logging.getLogger(__name__)


def empty_record() -> dict[str, Any]:
    """The metrics record before any validation: untrained score, every validation, the best."""
    return {"untrained": None, "history": [], "best": None}


class ClusterEvaluator(Callback):
    """Clusters each validation image's features with the module's ``clusterer`` and logs
    ``val/f1`` (macro, the paper's), ``val/f1_forged`` and ``val/iou``: means over images, synced
    across DDP ranks, each rank clustering its own share of the images.

    It also writes, to the run folder (the logger's ``log_dir``): ``metrics.json`` with the scores
    of the untrained model (from the sanity check; set ``trainer.num_sanity_val_steps: -1`` to
    score the whole validation set), every validation and the best one; and for the first
    ``save_images`` validation images a PNG of image / truth / prediction per validation.

    Args:
        save_images: how many validation images to draw per validation (rank 0's first ones).
        mask_resize: how the feature-grid mask is brought to the truth's size: nearest or
            bilinear (> 0.5, the official code's way).
        metrics_file: name of the JSON file in the run folder; None writes none.
    """

    def __init__(
        self,
        save_images: int = 8,
        mask_resize: Literal["nearest", "bilinear"] = "nearest",
        metrics_file: str | None = "metrics.json",
    ) -> None:
        self.save_images = save_images
        self.mask_resize = mask_resize
        self.metrics_file = metrics_file
        self.metrics = ForgeryLocalizationMetrics()
        self.record: dict[str, Any] = empty_record()
        self._drawn = 0
        self._started = 0.0
        self._run_dir = Path(".")
        self._pictures: list[tuple[Any, str]] = []

    # ---------------------------------------------------------------- where results go

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._run_dir = run_dir(trainer)  # collective under DDP: here, where every rank is

    def run_dir(self, trainer: L.Trainer) -> Path:
        """The run folder (the logger's log_dir), fixed at setup."""
        return self._run_dir

    def image_dir(self, trainer: L.Trainer) -> Path:
        tag = "untrained" if trainer.sanity_checking else f"step{trainer.global_step:07d}"
        return self.run_dir(trainer) / "val_images" / tag

    # ---------------------------------------------------------------- hooks

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit":  # `validate` reports its own pass, not a checkpoint's history
            self.record = empty_record()
        self.metrics = self.metrics.to(pl_module.device)
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
        features = outputs["features"].float().cpu()
        for i, fmap in enumerate(features):
            prediction, _ = pl_module.clusterer(fmap)
            truth = batch["mask_full"][i]
            full = resize_mask(prediction, tuple(truth.shape), self.mask_resize)
            self.metrics.update(full, truth)
            if trainer.is_global_zero and self._drawn < self.save_images:
                self._draw(trainer, batch, i, full, truth)

    def _draw(self, trainer: L.Trainer, batch: Any, i: int, prediction, truth) -> None:
        scores = pixel_scores(prediction, truth)
        image = batch["image"][i]
        size = tuple(image.shape[-2:])
        folder = self.image_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        name = Path(str(batch["name"][i])).name.replace("[", "_").replace("]", "")
        caption = f"{batch['name'][i]}  F1 {scores['f1']:.3f}  IoU {scores['iou']:.3f}"
        strip = side_by_side(
            image, resize_mask(truth, size), resize_mask(prediction, size), caption=caption
        )
        save_rgb(folder / f"{self._drawn:02d}_{name}.png", strip)
        self._pictures.append((strip, caption))
        self._drawn += 1

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {k: float(v) for k, v in self.metrics.compute().items()}
        self.metrics.reset()
        values["cluster_seconds"] = time.perf_counter() - self._started
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, **values}
        if trainer.sanity_checking:
            self.record["untrained"] = entry
            log.info("untrained model: F1 %.4f over %d images", values["f1"], values["images"])
        else:
            pl_module.log_dict(
                {f"val/{k}": values[k] for k in ForgeryLocalizationMetrics.names}, prog_bar=True,
                sync_dist=True,  # already synced; this only tells Lightning so
            )
            self.record["history"].append(entry)
            best = self.record["best"]
            if best is None or entry["f1"] > best["f1"]:
                self.record["best"] = entry
            self._log_pictures(trainer)
        self._write(trainer)

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
        if not self.metrics_file:
            return
        self.record["final"] = self.record["history"][-1] if self.record["history"] else None
        path = self.run_dir(trainer) / self.metrics_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record, indent=2))

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        print(self.summary(trainer))

    def summary(self, trainer: L.Trainer) -> str:
        """The before/after lines a person reads at the end of a run."""
        lines = [f"\nRun folder: {self.run_dir(trainer).resolve()}"]
        untrained, final = self.record["untrained"], self.record.get("final")
        header = "validation (clustering, image resolution): macro F1 | forged F1 | IoU | images"
        lines.append(header)
        for label, entry in (("untrained", untrained), ("trained", final), ("best", self.record["best"])):
            if entry:
                lines.append(
                    f"  {label:<9} {entry['f1']:.4f} | {entry['f1_forged']:.4f} | "
                    f"{entry['iou']:.4f} | {int(entry['images'])}  (step {entry['step']})"
                )
        ckpt = getattr(trainer.checkpoint_callback, "best_model_path", "") or getattr(
            trainer.checkpoint_callback, "last_model_path", ""
        )
        if ckpt:
            lines.append(f"checkpoint: {ckpt}")
        if self.metrics_file:
            lines.append(f"metrics: {self.run_dir(trainer) / self.metrics_file}")
        lines.append(f"pictures: {self.run_dir(trainer) / 'val_images'}")
        skipped = getattr(trainer.lightning_module, "skipped_items", 0)
        if skipped:
            lines.append(f"skipped {skipped} unreadable item(s) on this rank; the warnings above name them")
        return "\n".join(lines)

    def state_dict(self) -> dict[str, Any]:
        return {"record": self.record}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.record = state_dict.get("record", self.record)

