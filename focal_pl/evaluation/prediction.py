"""``focal-pl predict`` on a user's images: masks, overlays, scores and one HTML page.

The GPU work of a batch (features, clustering) runs in the loop; the host work of finishing each
image (scores at its own size, re-reading the original for the overlay, PNG encoding) runs on a
small thread pool, so the device goes on to the next batch meanwhile.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from focal_pl.clustering.image_score import ImageScore
from focal_pl.evaluation.files import UniqueStems, gather_rows
from focal_pl.evaluation.report import LEGEND
from focal_pl.data.batch import Batch
from focal_pl.evaluation.scoring import Clustered, Scorer
from focal_pl.masks import Resize
from focal_pl.runs import run_dir
from focal_pl.visualize import overlay, to_uint8_image

log = logging.getLogger(__name__)


class PredictionWriter(Callback):
    """``focal-pl predict`` on a folder of images: per image a mask PNG and an overlay PNG at the
    image's own size, a row of ``scores.csv`` (image-level score, forged share, and the metrics
    where a ground truth exists), and one self-contained ``index.html`` showing them all.

    Args:
        output_dir: where to write (default: the run folder; ``focal-pl predict`` with a checkpoint
            makes one beside the trained run, ``<run>/predict_K``).
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
        if host_threads < 0:
            raise ValueError(f"prediction.host_threads must be >= 0, got {host_threads}")
        self.output_dir = output_dir
        self.image_score = image_score
        self.mask_resize = mask_resize
        self.host_threads = host_threads
        self.rows: list[dict[str, Any]] = []
        self.folder = Path(".")
        self._files = UniqueStems()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._lock = threading.Lock()
        self._started = 0.0
        self.seconds = 0.0  # from the first batch's start to the last file written

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "predict":
            base = run_dir(trainer)
            self.folder = Path(self.output_dir) if self.output_dir else base

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self._files, self._pending = [], UniqueStems(), []
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(self.host_threads) if self.host_threads else None
        self._started = time.perf_counter()

    def on_predict_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if not outputs or "features" not in outputs:
            return
        scorer = Scorer.of(pl_module, self.mask_resize, self.image_score)
        clustered = scorer.cluster(outputs["features"])
        # the model input back on the host only for images whose file cannot be re-read
        host = batch.host_copy(keep_image=not all(Path(str(n)).is_file() for n in batch.name))
        if self._pool is None:
            self._finish(scorer, host, clustered)
        else:
            self._pending.append(self._pool.submit(self._finish, scorer, host, clustered))

    def _finish(self, scorer: Scorer, batch: Batch, clustered: Clustered) -> None:
        """The host part of a batch (only host tensors: a queued batch holds no device memory)."""
        for i, item in enumerate(scorer.score(batch, clustered)):
            scorer.measure(item)
            name = str(batch.name[i])
            with self._lock:
                stem = self._files.stem(self.folder, name)
            picture = self._original(name, batch.image, i, tuple(batch.size[i]))
            Image.fromarray(item.image_mask.numpy().astype(np.uint8) * 255).save(self.folder / f"{stem}_mask.png")
            Image.fromarray(overlay(picture, item.image_mask)).save(self.folder / f"{stem}_overlay.png")
            row = item.result.row()
            row.update(mask_file=f"{stem}_mask.png", overlay_file=f"{stem}_overlay.png")
            self.rows.append(row)

    @staticmethod
    def _original(name: str, images: torch.Tensor | None, i: int, size: tuple[int, int]) -> np.ndarray:
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
        (self.folder / "index.html").write_text(render_html(rows, self.image_score))
        (self.folder / "scores.json").write_text(json.dumps(rows, indent=1, default=lambda v: None))
        rate = len(rows) / max(self.seconds, 1e-9)
        print(f"\nPredictions for {len(rows)} images in {self.seconds:.1f} s ({rate:.2f} images/s): "
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
            f"Sorted by image-level score ({html.escape(score_name)}), highest first.</p>"
            f"<ul>{legend}</ul><main>{''.join(cards)}</main></body></html>")
