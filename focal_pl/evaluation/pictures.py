"""Validation pictures: image / truth / prediction side by side for the first validation images, as
PNG files in the run folder and as images for loggers that take them (W&B)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from focal_pl.data.batch import Batch
from focal_pl.evaluation.scoring import Scored
from focal_pl.masks import resize_mask
from focal_pl.metrics import pixel_scores
from focal_pl.runs import safe_stem
from focal_pl.visualize import save_rgb, side_by_side


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

    @staticmethod
    def folder(run: Path, trainer: L.Trainer) -> Path:
        tag = "untrained" if trainer.sanity_checking else f"step{trainer.global_step:07d}"
        return run / "val_images" / tag

    def add(self, run: Path, trainer: L.Trainer, batch: Batch, scored: list[Scored]) -> None:
        """Draw this batch's images while fewer than ``count`` were drawn (rank 0 only)."""
        if not trainer.is_global_zero:
            return
        for i, item in enumerate(scored):
            if len(self.strips) >= self.count or not item.result.truth:
                continue
            truth = batch.mask_full[i]
            numbers = pixel_scores(item.image_mask, truth)
            image = batch.image[i]
            size = tuple(image.shape[-2:])
            folder = self.folder(run, trainer)
            folder.mkdir(parents=True, exist_ok=True)
            caption = f"{batch.name[i]}  F1 {numbers['f1']:.3f}  IoU {numbers['iou']:.3f}"
            strip = side_by_side(image, resize_mask(truth, size), resize_mask(item.image_mask, size), caption=caption)
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
