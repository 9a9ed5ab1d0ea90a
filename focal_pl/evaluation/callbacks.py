"""Lightning callbacks of ``focal-pl test`` (the evaluation report) and ``focal-pl predict``
(masks, overlays, scores and an HTML page for a folder of images)."""

from __future__ import annotations

import csv
import html
import json
import logging
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from focal_pl.clustering.image_score import ImageScore
from focal_pl.evaluation.report import LEGEND, plot_robustness, write_report
from focal_pl.evaluation.scoring import Resolution, score_image
from focal_pl.runs import run_dir
from focal_pl.visualize import overlay, to_uint8_image

log = logging.getLogger(__name__)


def _splits(pl_module: L.LightningModule) -> list[int] | None:
    return getattr(pl_module.extractor, "member_channels", None)


def _gather(rows: list[Any], trainer: L.Trainer) -> list[Any]:
    """Every rank's rows on every rank (a no-op without distributed training)."""
    if trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return rows
    gathered: list[list[Any]] = [[] for _ in range(trainer.world_size)]
    torch.distributed.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


class _Files:
    """Unique file stems per folder (two images may share a file name in different folders)."""

    def __init__(self) -> None:
        self.seen: dict[Path, set[str]] = {}

    def stem(self, folder: Path, name: str) -> str:
        stem = _safe(Path(name).stem) or "image"
        taken = self.seen.setdefault(folder, set())
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate)
        return candidate


class TestReport(Callback):
    """``focal-pl test``: clusters every test image, saves its predicted mask and score map, and
    writes per data set (and degradation) macro F1, forged-class F1, permutation-max F1, IoU, pixel
    AUC, image-level AUC and accuracy and the false-alarm rate on authentic images to
    ``results.json``, ``results.csv`` and ``results.md`` in the run folder (plus ``per_image.csv``
    and, for robustness runs, a plot per metric).

    Args:
        resolution: ``image`` (each image's own size) or ``grid`` (the feature grid, as the
            official code scores; it inflates the numbers).
        mask_resize: nearest, or bilinear then > 0.5 (the official code's way).
        image_score: heterogeneity (NMI of local feature distributions) or forged_share.
        save_predictions: write each predicted mask and uint8 score map as PNG.
        output_dir: where to write (default: the logger's run folder / ``test``).
    """

    def __init__(
        self,
        resolution: Resolution = "image",
        mask_resize: Literal["nearest", "bilinear"] = "nearest",
        image_score: ImageScore = "heterogeneity",
        save_predictions: bool = True,
        output_dir: str | None = None,
    ) -> None:
        self.resolution = resolution
        self.mask_resize = mask_resize
        self.image_score = image_score
        self.save_predictions = save_predictions
        self.output_dir = output_dir
        self.rows: list[dict[str, Any]] = []
        self.table: list[dict[str, Any]] = []
        self.folder = Path(".")
        self._files = _Files()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "test":
            base = run_dir(trainer)  # collective under DDP
            self.folder = Path(self.output_dir) if self.output_dir else base / "test"

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self._files = [], _Files()

    def _set(self, trainer: L.Trainer, index: int) -> tuple[str, str]:
        sets = getattr(trainer.datamodule, "test_sets", None)
        return sets[index] if sets and index < len(sets) else (f"test{index}", "none")

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if not outputs or "features" not in outputs:
            return
        set_name, degradation = self._set(trainer, dataloader_idx)
        for i, features in enumerate(outputs["features"]):
            truth = batch["mask_full"][i] if batch["truth"][i] else None
            result, mask, score = score_image(
                features, truth, tuple(batch["size"][i]), pl_module.clusterer, set_name=set_name,
                degradation=degradation, name=batch["name"][i], splits=_splits(pl_module),
                resolution=self.resolution, mask_resize=self.mask_resize, image_method=self.image_score,
            )
            if self.save_predictions:
                folder = self.folder / "predictions" / _safe(set_name) / _safe(degradation)
                folder.mkdir(parents=True, exist_ok=True)
                stem = self._files.stem(folder, result.name)
                Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(folder / f"{stem}_mask.png")
                Image.fromarray(score.numpy()).save(folder / f"{stem}_score.png")
                result.mask_file = str((folder / f"{stem}_mask.png").relative_to(self.folder))
                result.score_file = str((folder / f"{stem}_score.png").relative_to(self.folder))
            self.rows.append(result.row())

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = _gather(self.rows, trainer)
        meta = {
            "model": type(pl_module.extractor).__name__,
            "checkpoint": getattr(trainer, "ckpt_path", None),
            "resolution": self.resolution,
            "clusterer": repr(pl_module.clusterer),
            "image_score": self.image_score,
        }
        from focal_pl.evaluation.report import aggregate

        self.table = aggregate(rows)
        for entry in self.table:
            prefix = f"test/{entry['set']}" + ("" if entry["degradation"] == "none" else f"/{entry['degradation']}")
            for key in ("f1", "f1_forged", "iou", "pixel_auc", "image_auc", "false_alarm_rate"):
                if not np.isnan(entry[key]):
                    pl_module.log(f"{prefix}/{key}", float(entry[key]), rank_zero_only=True)
        self._write(rows, meta)

    @rank_zero_only
    def _write(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        if not rows:
            return
        write_report(self.folder, rows, meta)
        plots = plot_robustness(self.folder, self.table)
        print(f"\nTest results ({len(rows)} images): {self.folder / 'results.md'}")
        print((self.folder / "results.md").read_text().split("\nColumns:")[0])
        if plots:
            print("robustness plots: " + ", ".join(str(p) for p in plots))


class PredictionWriter(Callback):
    """``focal-pl predict`` on a folder of images: per image a mask PNG and an overlay PNG at the
    image's own size, a row of ``scores.csv`` (image-level score, forged share, and the metrics
    where a ground truth exists), and one self-contained ``index.html`` showing them all.

    Args:
        output_dir: where to write (default: the logger's run folder / ``predictions``).
        image_score: heterogeneity or forged_share.
        mask_resize: nearest or bilinear.
    """

    def __init__(
        self,
        output_dir: str | None = None,
        image_score: ImageScore = "heterogeneity",
        mask_resize: Literal["nearest", "bilinear"] = "nearest",
    ) -> None:
        self.output_dir = output_dir
        self.image_score = image_score
        self.mask_resize = mask_resize
        self.rows: list[dict[str, Any]] = []
        self.folder = Path(".")
        self._files = _Files()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "predict":
            base = run_dir(trainer)
            self.folder = Path(self.output_dir) if self.output_dir else base / "predictions"

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self._files = [], _Files()
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_predict_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        for i, item in enumerate(outputs):
            name = batch["name"][i]
            has_truth = batch.get("truth", [False] * len(outputs))[i] and "mask_full" in batch
            truth = batch["mask_full"][i] if has_truth else None
            result, mask, _ = score_image(
                item["features"], truth, tuple(batch["size"][i]), pl_module.clusterer, name=name,
                splits=_splits(pl_module), mask_resize=self.mask_resize, image_method=self.image_score,
                clustered=(item["mask"], item["score"]),
            )
            stem = self._files.stem(self.folder, name)
            picture = self._original(name, batch["image"][i], tuple(batch["size"][i]))
            Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(self.folder / f"{stem}_mask.png")
            Image.fromarray(overlay(picture, mask)).save(self.folder / f"{stem}_overlay.png")
            row = result.row()
            row.update(mask_file=f"{stem}_mask.png", overlay_file=f"{stem}_overlay.png")
            self.rows.append(row)

    @staticmethod
    def _original(name: str, resized: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """The image as the user has it (re-read from its file), else the model input resized back."""
        from focal_pl.data.decode import read_image

        path = Path(name)
        if path.is_file():
            try:
                image = read_image(path)
                if image.shape[:2] == size:
                    return image
            except Exception:  # noqa: BLE001 - fall back to the model's input
                pass
        import cv2

        return cv2.resize(to_uint8_image(resized), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = _gather(self.rows, trainer)
        self._write(rows)

    @rank_zero_only
    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        fields = ["name", "image_score", "forged_share", "f1", "f1_forged", "iou", "pixel_auc",
                  "mask_file", "overlay_file"]
        with (self.folder / "scores.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        (self.folder / "index.html").write_text(render_html(rows))
        (self.folder / "scores.json").write_text(json.dumps(rows, indent=1, default=lambda v: None))
        print(f"\nPredictions for {len(rows)} images: {self.folder / 'index.html'}")


def render_html(rows: list[dict[str, Any]]) -> str:
    """One page, no scripts, no network: every image's overlay, mask and scores (and metrics)."""
    def number(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"

    cards = []
    for row in sorted(rows, key=lambda r: -r["image_score"] if not np.isnan(r["image_score"]) else 0):
        metrics = ""
        if row.get("truth"):
            metrics = (f"<div>F1 {number(row['f1'])} &middot; forged F1 {number(row['f1_forged'])} "
                       f"&middot; IoU {number(row['iou'])} &middot; AUC {number(row['pixel_auc'])}</div>")
        cards.append(
            f"<figure><a href='{html.escape(row['overlay_file'])}'><img src='{html.escape(row['overlay_file'])}'></a>"
            f"<a href='{html.escape(row['mask_file'])}'><img src='{html.escape(row['mask_file'])}'></a>"
            f"<figcaption><b>{html.escape(Path(row['name']).name)}</b>"
            f"<div>score {number(row['image_score'])} &middot; forged area {100 * row['forged_share']:.1f}%</div>"
            f"{metrics}</figcaption></figure>"
        )
    style = ("body{font-family:sans-serif;margin:16px;background:#fafafa}"
             "main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}"
             "figure{margin:0;background:#fff;border:1px solid #ddd;padding:8px}"
             "img{width:49%;margin-right:1%;image-rendering:pixelated}figcaption{font-size:13px}")
    legend = "".join(f"<li><code>{k}</code>: {html.escape(v)}</li>" for k, v in LEGEND.items()
                     if k in ("f1", "f1_forged", "iou", "pixel_auc"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>focal-pl predictions</title>"
            f"<style>{style}</style></head><body><h1>focal-pl predictions ({len(rows)} images)</h1>"
            f"<p>Left: the image with the predicted forged region in red; right: the mask. "
            f"Sorted by image-level score (heterogeneity of the features), highest first.</p>"
            f"<ul>{legend}</ul><main>{''.join(cards)}</main></body></html>")
