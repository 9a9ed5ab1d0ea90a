"""``focal-pl test``: every test set (and degradation) scored image by image into one report."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.clustering.image_score import ImageScore
from focal_pl.evaluation.curves import PixelHistograms, write_index, write_plots
from focal_pl.evaluation.writer import ImageFiles, gather_rows
from focal_pl.evaluation import paper
from focal_pl.evaluation.report import (
    TABLE_METRICS,
    aggregate,
    beside_paper,
    plot_robustness,
    summary_lines,
    write_report,
)
from focal_pl.evaluation.scoring import Clustered
from focal_pl.evaluation.masks import Resize, resize_mask
from focal_pl.evaluation.pictures import save_rgb, side_by_side
from focal_pl.training.provenance import versions_line
from focal_pl.training.runs import run_dir, safe_stem

log = logging.getLogger(__name__)


RESOLUTIONS = {"image": ("image",), "grid": ("grid",), "both": ("grid", "image")}


class TestReport(Callback):
    """``focal-pl test``: clusters every test image once, saves its predicted mask and score map, and
    writes per data set (and degradation, and resolution) macro F1, forged-class F1, permutation-max
    F1, IoU, pixel AUC, image-level AUC and accuracy (both from one image-level score) and the
    false-alarm rate on authentic images to ``results.json``, ``results.csv`` and ``results.md``
    (plus ``per_image.csv`` and, for robustness runs, a plot per metric). Where the model and a set
    are in the paper's tables, the paper's F1 / IoU and our difference stand beside ours.

    Args:
        resolution: ``both`` (default): each set scored on the feature grid as the official code
            does (what the paper's numbers use) and at each image's own size, each row labelled;
            or only ``grid`` / ``image``.
        mask_resize: nearest, or bilinear then > 0.5 (the official code's way).
        image_score: the image-level score, which gives both the image AUC and the accuracy:
            forged_share (default: the predicted mask's share of the image) or heterogeneity (NMI
            of local feature distributions, the paper's Table IV score).
        image_threshold: an image is called forged when its score exceeds this (image accuracy);
            None: 0 for forged_share (any forged pixel), and no accuracy for heterogeneity, which
            has no threshold that holds across models and data (measured:
            benchmarks/results/real_forgeries.md); give one to have its accuracy.
        save_predictions: write each predicted mask and uint8 score map as PNG.
        save_pictures: per set (and degradation), draw this many images with a ground truth as
            image / truth / prediction / score-map strips with their macro F1 and IoU
            (``pictures/<set>/``, at each image's own resolution).
        output_dir: where to write (default: the run folder; ``focal-pl test`` with a checkpoint
            makes one beside the trained run, ``<run>/test_K``).
        paper_row: the paper's row this model stands beside: ``auto`` (by its extractor: SamViT ->
            FOCAL (ViT), HRNet -> FOCAL (HRNet), FusedExtractor -> FOCAL (Fusion)), a row name of
            ``paper_table``, or None for none.
        paper_table: the paper's table of ``paper_row`` (``table_2_pixel``; an ablation gives its own).
        save_curves: per undegraded set, ``curves/<set>.png`` (pooled F1 against the score map's
            threshold, and the pixel ROC) and ``curves/<set>_f1.png`` (the per-image F1s), at each
            image's own resolution when it is scored there; all shown by the folder's ``index.html``.
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        resolution: Literal["both", "grid", "image"] = "both",
        mask_resize: Resize = "nearest",
        image_score: ImageScore = "forged_share",
        image_threshold: float | None = None,
        save_predictions: bool = True,
        save_pictures: int = 8,
        output_dir: str | None = None,
        paper_row: str | None = "auto",
        paper_table: str = paper.MAIN_TABLE,
        save_curves: bool = True,
    ) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"testing.resolution must be 'both', 'grid' or 'image', got {resolution!r}")
        if paper_table not in paper.figures():
            raise ValueError(f"paper_table must be one of the paper's tables, got {paper_table!r}")
        if paper_row not in (None, "auto") and paper_row not in paper.rows(paper_table):
            raise ValueError(f"paper_row {paper_row!r} is not a row of {paper_table} "
                             f"({', '.join(paper.rows(paper_table))})")
        self.resolution = resolution
        self.mask_resize = mask_resize
        self.image_score = image_score
        default = 0.0 if image_score == "forged_share" else None
        self.image_threshold = default if image_threshold is None else image_threshold
        self.save_predictions = save_predictions
        if save_pictures < 0:
            raise ValueError(f"testing.save_pictures must be >= 0, got {save_pictures}")
        self.save_pictures = save_pictures
        self._drawn: dict[tuple[str, str], int] = {}
        self.output_dir = output_dir
        self.paper_row = paper_row
        self.paper_table = paper_table
        self.save_curves = save_curves
        self.curve_resolution = "image" if "image" in RESOLUTIONS[resolution] else "grid"
        self._histograms = PixelHistograms()
        self.rows: list[dict[str, Any]] = []
        self.table: list[dict[str, Any]] = []
        self.folder = Path(".")
        self._files = ImageFiles(self.folder)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "test":
            base = run_dir(trainer)  # collective under DDP
            self.folder = Path(self.output_dir) if self.output_dir else base

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self._files, self._drawn = [], ImageFiles(self.folder), {}
        self._histograms = PixelHistograms()

    def _set(self, trainer: L.Trainer, index: int) -> tuple[str, str]:
        sets = getattr(trainer.datamodule, "test_sets", None)
        return sets[index] if sets and index < len(sets) else (f"test{index}", "none")

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, Clustered):
            return
        set_name, degradation = self._set(trainer, dataloader_idx)
        scorer = replace(pl_module.scorer, mask_resize=self.mask_resize, image_method=self.image_score)
        for resolution in RESOLUTIONS[self.resolution]:  # clustered once by the module, scored at each
            for i, item in enumerate(scorer.score(batch, outputs, resolution, set_name, degradation)):
                result = scorer.measure(item)
                if self.save_predictions:
                    folder = Path("predictions", safe_stem(set_name), safe_stem(degradation), resolution)
                    files = self._files.write(result.name, item.mask, item.score, folder=folder)
                    result.mask_file, result.score_file = files["mask_file"], files["score_file"]
                if resolution == "image" and item.truth is not None and trainer.is_global_zero:
                    self._picture(batch, i, item, set_name, degradation)
                if (self.save_curves and resolution == self.curve_resolution and degradation == "none"
                        and item.truth is not None):
                    self._histograms.add(set_name, item.score, item.truth)
                self.rows.append({**result.row(), "resolution": resolution})

    def _picture(self, batch: Any, i: int, item: Any, set_name: str, degradation: str) -> None:
        """The strip of one image with a truth, while its set has fewer than ``save_pictures``."""
        drawn = self._drawn.get((set_name, degradation), 0)
        if drawn >= self.save_pictures:
            return
        self._drawn[(set_name, degradation)] = drawn + 1
        size = tuple(batch.image[i].shape[-2:])
        caption = f"{Path(item.result.name).name}  macro F1 {item.result.f1:.3f}  IoU {item.result.iou:.3f}"
        strip = side_by_side(batch.image[i], resize_mask(item.truth, size), resize_mask(item.mask, size),
                             item.score, caption=caption)
        folder = self.folder / "pictures" / safe_stem(set_name) / (safe_stem(degradation) if degradation != "none"
                                                                   else "")
        folder.mkdir(parents=True, exist_ok=True)
        save_rgb(folder / f"{drawn:02d}_{safe_stem(item.result.name)}.png", strip)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = gather_rows(self.rows, trainer)
        histograms = PixelHistograms.merged(gather_rows([self._histograms.state()], trainer))
        row = paper.row_of(pl_module.extractor) if self.paper_row == "auto" else self.paper_row
        meta = {
            "model": type(pl_module.extractor).__name__,
            "checkpoint": getattr(trainer, "ckpt_path", None),
            "resolution": self.resolution,
            "clusterer": repr(pl_module.clusterer),
            "image_score": self.image_score,
            "image_threshold": self.image_threshold,
            "paper": {"table": self.paper_table, "row": row} if row else None,
            "code": versions_line(),
        }
        self.table = aggregate(rows, self.image_threshold)
        if row:
            beside_paper(self.table, self.paper_table, row)
        self._log(trainer)
        self._write(rows, meta, histograms)

    @rank_zero_only
    def _log(self, trainer: L.Trainer) -> None:
        """Every set's numbers to the loggers (W&B, CSV) under ``test/<set>[/<degradation>]/<metric>``.
        They go to the loggers directly: logged through Lightning from an epoch-end hook, each set's
        numbers would be printed under every test loader's column of its table."""
        metrics = {}
        for entry in self.table:
            prefix = f"test/{entry['set']}" + ("" if entry["degradation"] == "none" else f"/{entry['degradation']}")
            prefix += "" if entry["resolution"] == "image" else f"/{entry['resolution']}"
            for key in TABLE_METRICS:
                value = entry[key]
                if isinstance(value, float) and not np.isnan(value):
                    metrics[f"{prefix}/{key}"] = value
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    @rank_zero_only
    def _write(self, rows: list[dict[str, Any]], meta: dict[str, Any],
               histograms: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        if not rows:
            return
        write_report(self.folder, rows, meta, self.table)
        plots = plot_robustness(self.folder, self.table)
        curves = write_plots(self.folder, histograms, rows, self.curve_resolution) if self.save_curves else {}
        index = write_index(self.folder, f"focal-pl test: {meta['model']}", summary_lines(self.table, meta, True),
                            curves)
        print(f"\nTest results ({scored_images(rows)}): {self.folder / 'results.md'} (each column defined there)")
        print("\n".join(summary_lines(self.table, meta)))
        for line in unscored_sets(rows):
            print(line)
        if plots:
            print("robustness plots: " + ", ".join(str(p) for p in plots))
        print(f"curves, histograms and pictures: {index}")


def scored_images(rows: list[dict[str, Any]]) -> str:
    """``72 images`` (each image once, whatever the resolutions and degradations it was scored at),
    with how many ways each was scored when more than one."""
    images = len({(r["set"], r["name"]) for r in rows})
    resolutions = len({r.get("resolution", "image") for r in rows})
    degradations = len({r["degradation"] for r in rows})
    ways = [f"{resolutions} resolutions"] * (resolutions > 1) + [f"{degradations} degradations"] * (degradations > 1)
    return f"{images} images" + (f", each at {' x '.join(ways)}" if ways else "")


def unscored_sets(rows: list[dict[str, Any]]) -> list[str]:
    """A line for each set none of whose images has a ground truth: what it could not score."""
    lines = []
    for name in dict.fromkeys(r["set"] for r in rows):
        own = [r for r in rows if r["set"] == name]
        if not any(r["truth"] for r in own):
            count = len({r["name"] for r in own})
            lines.append(f"{name}: {count} images without a ground truth (no mask, not known authentic): no pixel "
                         "metric, image AUC or false-alarm rate can be scored; their masks and score maps are in "
                         "predictions/ (for a user's images, `focal-pl predict` writes overlays and a page)")
    return lines
