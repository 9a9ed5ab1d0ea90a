"""``focal-pl predict`` on a user's images: masks, score maps, overlays, scores and one HTML page.

Lightning's ``BasePredictionWriter``: the module clusters each batch (the device work, in the loop);
the host work of finishing each image (scores at its own size, re-reading the original for the
overlay, PNG encoding) runs on a small thread pool, so the device goes on to the next batch
meanwhile. Each predict writes into a folder of its own: a new ``<run>/predict_K`` by default, or
``output_dir``, which must hold no predictions yet and is held (``.lock``) while one predict writes
it, so two predicts never mix or overwrite each other's files.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import os
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.clustering.image_score import ImageScore
from focal_pl.data.batch import Batch
from focal_pl.data.decode import small_image
from focal_pl.evaluation.masks import Resize
from focal_pl.evaluation.pictures import to_uint8_image
from focal_pl.evaluation.report import LEGEND
from focal_pl.evaluation.scoring import Clustered, Scorer
from focal_pl.evaluation.writer import ImageFiles, gather_rows
from focal_pl.files import locks
from focal_pl.files.atomic import write_atomic
from focal_pl.training.runs import run_dir

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("f1", "f1_forged", "iou", "pixel_auc")  # only where some image has a ground truth
PREDICTION_FILES = ("scores.csv", "scores.json", "index.html")
LOCK = ".lock"


class PredictionFolderError(ValueError):
    """The folder a predict would write to cannot be used (it holds predictions, another predict holds it)."""


class NothingPredicted(RuntimeError):
    """A predict ended without a single image predicted (every one was skipped)."""


def holds_predictions(folder: Path) -> bool:
    """Whether ``folder`` holds a predict's files already (its tables or any image's mask)."""
    return folder.is_dir() and (any((folder / name).exists() for name in PREDICTION_FILES)
                                or next(folder.glob("*_mask.png"), None) is not None)


class PredictionWriter(BasePredictionWriter):
    """``focal-pl predict`` on a folder of images: per image a mask PNG, a score-map PNG and an overlay
    PNG at the image's own size, a row of ``scores.csv`` (image-level score, forged share, and the
    metrics where a ground truth exists), and one self-contained ``index.html`` showing them all.

    Args:
        output_dir: where to write (default: the run folder; ``focal-pl predict`` makes a new one for
            each call, ``<run>/predict_K`` beside a trained run). A folder given here must hold no
            predictions yet.
        image_score: the score each image is ranked by: forged_share (default) or heterogeneity.
        mask_resize: nearest or bilinear.
        host_threads: threads that finish images on the host while the device works on the next
            batch (0: finish each batch in the loop).
    """

    def __init__(
        self,
        output_dir: str | None = None,
        image_score: ImageScore = "forged_share",
        mask_resize: Resize = "nearest",
        host_threads: int = 2,
    ) -> None:
        super().__init__(write_interval="batch")
        if host_threads < 0:
            raise ValueError(f"prediction.host_threads must be >= 0, got {host_threads}")
        self.output_dir = output_dir
        self.image_score = image_score
        self.mask_resize = mask_resize
        self.host_threads = host_threads
        self.rows: list[dict[str, Any]] = []
        self.folder: Path | None = None
        self.skipped = 0
        self._lock_fd: int | None = None
        self._files = ImageFiles(Path("."))
        self._image_size = 1024  # the model's input side (the data module's, at predict start)
        self._warned: set[str] = set()  # small images said once
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._started = 0.0
        self.seconds = 0.0  # from the first batch's start to the last file written

    # ---------------------------------------------------------------- the folder

    def claim(self, folder: Path) -> None:
        """Make ``folder`` this predict's own: created if needed, its ``.lock`` held (released when
        the process ends, even by SIGKILL); ``PredictionFolderError`` when another predict holds it or
        it holds predictions already."""
        folder = Path(folder)
        if self.folder == folder and self._lock_fd is not None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor = locks.hold(folder / LOCK, f"predict, process {os.getpid()} on {socket.gethostname()}")
        except locks.LockHeld as held:
            raise PredictionFolderError(f"prediction.output_dir: {folder} is being written by {held.holder}; give "
                                        "another folder (two predicts never share one)") from None
        except OSError as error:
            raise PredictionFolderError(f"prediction.output_dir: cannot write {folder}: "
                                        f"{os.strerror(error.errno) if error.errno else error}") from error
        if holds_predictions(folder):
            (folder / LOCK).unlink(missing_ok=True)  # held by this process: nothing of it stays
            os.close(descriptor)
            raise PredictionFolderError(f"prediction.output_dir: {folder} holds predictions already (scores.csv, "
                                        "masks); give an empty or new folder, or leave it out for a new one")
        self.folder, self._lock_fd = folder, descriptor

    def release(self) -> None:
        """Let go of the folder's lock (the files stay)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            if self.folder is not None:
                (self.folder / LOCK).unlink(missing_ok=True)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        folder = Path(self.output_dir) if self.output_dir else run_dir(trainer)  # run_dir: collective under DDP
        if trainer.is_global_zero:
            self.claim(folder)
        self.folder = folder

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "predict":
            self.release()

    # ---------------------------------------------------------------- images

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self._pending, self.skipped = [], [], 0
        self._files = ImageFiles(self.folder)
        self._image_size = int(getattr(trainer.datamodule, "image_size", 1024) or 1024)
        self._warned: set[str] = set()
        self._pool = ThreadPoolExecutor(self.host_threads) if self.host_threads else None
        self._started = time.perf_counter()

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(batch, Batch):
            self.skipped += batch.skipped
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if not isinstance(prediction, Clustered):
            return
        scorer = Scorer(pl_module.scorer.masker, pl_module.scorer.splits, self.mask_resize, self.image_score)
        # only host tensors go to a host thread: a queued batch holds no device memory
        features = prediction.features.float().cpu() if self.image_score == "heterogeneity" else None
        clustered = Clustered(prediction.maps, features)
        host = batch.host_copy(keep_image=not all(Path(str(n)).is_file() for n in batch.name))
        if self._pool is None:
            self._finish(scorer, host, clustered)
        else:
            self._pending.append(self._pool.submit(self._finish, scorer, host, clustered))

    def _finish(self, scorer: Scorer, batch: Batch, clustered: Clustered) -> None:
        """The host part of a batch: each image scored at its own size and its files written."""
        for i, item in enumerate(scorer.score(batch, clustered)):
            scorer.measure(item, peers=False)
            name = str(batch.name[i])
            said = small_image(name, tuple(batch.size[i]), self._image_size)
            if said and name not in self._warned:
                self._warned.add(name)
                log.warning(said)
            picture = self._original(name, batch.image, i, tuple(batch.size[i]), upright=not batch.truth[i])
            row = item.result.row()
            row.update(self._files.write(name, item.image_mask, item.image_score_map, picture))
            self.rows.append(row)

    @staticmethod
    def _original(name: str, images: torch.Tensor | None, i: int, size: tuple[int, int],
                  upright: bool = True) -> np.ndarray:
        """The image as the user sees it (re-read from its file, turned by its EXIF orientation when it
        has no mask, as the model saw it), else the model input resized back."""
        from focal_pl.data.decode import read_image

        path = Path(name)
        if path.is_file():
            try:
                image = read_image(path, upright=upright)
                if image.shape[:2] == size:
                    return image
            except Exception:  # noqa: BLE001 - fall back to the model's input
                pass
        import cv2

        if images is None:
            return np.zeros((*size, 3), np.uint8)
        return cv2.resize(to_uint8_image(images[i]), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for future in self._pending:
            future.result()  # raises what a host thread raised
        if self._pool is not None:
            self._pool.shutdown()
        self._pending = []
        self.seconds = time.perf_counter() - self._started
        rows = sorted(gather_rows(self.rows, trainer), key=lambda r: r["name"])
        skipped = sum(gather_rows([self.skipped], trainer))
        if not rows:
            raise NothingPredicted(f"nothing was predicted: {skipped} image(s) were skipped, none was readable "
                                   "(the warnings above say why)" if skipped else "nothing was predicted: no image")
        self._write(rows, skipped)

    @rank_zero_only
    def _write(self, rows: list[dict[str, Any]], skipped: int) -> None:
        truth = any(row.get("truth") for row in rows)
        fields = ["name", "image_score", "forged_share", *(METRIC_COLUMNS if truth else ()), "mask_file",
                  "score_file", "overlay_file"]
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.folder / "scores.csv", table.getvalue())
        write_atomic(self.folder / "index.html", render_html(rows, self.image_score))
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
                  if truth or k not in METRIC_COLUMNS} for row in rows]
        write_atomic(self.folder / "scores.json", json.dumps(clean, indent=1, default=lambda v: None))
        rate = len(rows) / max(self.seconds, 1e-9)
        left_out = f"; {skipped} unreadable image(s) skipped" if skipped else ""
        print(f"\nPredictions for {len(rows)} images in {self.seconds:.1f} s ({rate:.2f} images/s){left_out}: "
              f"{self.folder / 'index.html'}")


def render_html(rows: list[dict[str, Any]], score_name: str = "forged_share") -> str:
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
            f"<a href='{html.escape(row['score_file'])}'><img src='{html.escape(row['score_file'])}'></a>"
            f"<figcaption><b>{html.escape(Path(row['name']).name)}</b>"
            f"<div>score {number(row['image_score'])} &middot; forged area {100 * row['forged_share']:.1f}%</div>"
            f"{metrics}</figcaption></figure>"
        )
    style = ("body{font-family:sans-serif;margin:16px;background:#fafafa}"
             "main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}"
             "figure{margin:0;background:#fff;border:1px solid #ddd;padding:8px}"
             "img{width:32%;margin-right:1%;image-rendering:pixelated}figcaption{font-size:13px}")
    legend = "".join(f"<li><code>{k}</code>: {html.escape(v)}</li>" for k, v in LEGEND.items()
                     if k in ("f1", "f1_forged", "iou", "pixel_auc"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>focal-pl predictions</title>"
            f"<style>{style}</style></head><body><h1>focal-pl predictions ({len(rows)} images)</h1>"
            f"<p>Each image with the predicted forged region in red, the mask (white: forged) and the score map "
            f"(bright: forged). "
            f"Sorted by image-level score ({html.escape(score_name)}), highest first.</p>"
            f"<ul>{legend}</ul><main>{''.join(cards)}</main></body></html>")
