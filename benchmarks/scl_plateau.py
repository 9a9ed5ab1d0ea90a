"""Where SCL stalls: each loss trains a small CNN on a weak-trace toy (more noise inside a box), with zero
and reflection padding: k-means F1 before and after, the mean loss of the first and last 25 steps.

    python benchmarks/scl_plateau.py      # 12 fits of 300 steps, a few minutes on 2 cores
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from focal_pl.clustering import Clusterer
from focal_pl.data import ForgeryDataModule
from focal_pl.data.sources import ForgerySource
from focal_pl.extractors import ForensicCNN
from focal_pl.module import FocalModule

from common import LOSSES, cpu_fit, table, write_result

# this study's names of losses of common.LOSSES
NAMES = {"scl_within (default)": "scl_within", "scl_hard": "scl_hard", "scl_fcm": "scl_fcm", "nce": "nce",
         "triplet": "triplet", "dcl": "dcl"}
STEPS, BATCH, SIDE = 300, 8, 48


class NoiseBoxes(ForgerySource):
    """Smooth random images (8 x 8 colours upsampled), noise sigma 0.01 outside a box and 0.06 inside
    it; the box is the forged mask. Item i depends only on (seed, i)."""

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.name = length, seed, f"noise-boxes-{seed}"

    def __len__(self) -> int:
        return self.length

    def load(self, index: int):
        g = np.random.default_rng([self.seed, index])
        base = cv2.resize(g.random((SIDE // 8, SIDE // 8, 3)), (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
        mask = np.zeros((SIDE, SIDE), np.uint8)
        h, w = g.integers(SIDE // 4, SIDE // 2, 2)
        y, x = g.integers(0, SIDE - h), g.integers(0, SIDE - w)
        mask[y : y + h, x : x + w] = 1
        image = base + (0.01 + 0.05 * mask[..., None]) * g.standard_normal((SIDE, SIDE, 3))
        return (image.clip(0, 1) * 255).round().astype(np.uint8), mask, {"name": self.describe(index)}


class LossCurve(Callback):
    """The training loss of every step."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def run(name: str, padding: str) -> dict:
    """One fit of one loss with one padding: F1 before and after, the loss at the start and the end."""
    curve = LossCurve()
    with cpu_fit(0, STEPS, [curve], sanity=-1) as (trainer, record, _):
        data = ForgeryDataModule(train=NoiseBoxes(STEPS * BATCH, seed=1), val=NoiseBoxes(16, seed=0),
                                 image_size=SIDE, batch_size=BATCH, num_workers=0)
        loss = LOSSES[NAMES[name]][0](STEPS)
        module = FocalModule(ForensicCNN(width=16, depth=5, out_dim=16, padding_mode=padding), loss,
                             Clusterer("kmeans"), optimizer=functools.partial(torch.optim.Adam, lr=2e-3),
                             scheduler=None)
        trainer.fit(module, data)
    return {"loss": name, "padding": padding, "f1_before": record.record["untrained"]["f1"],
            "f1_after": record.record["final"]["f1"], "loss_first_25": float(np.mean(curve.values[:25])),
            "loss_last_25": float(np.mean(curve.values[-25:]))}


def main() -> None:
    rows = [run(name, padding) for padding in ("zeros", "reflect") for name in NAMES]
    settings = {"steps": STEPS, "batch": BATCH, "side": SIDE, "lr": 2e-3, "seed": 0, "val_images": 16,
                "extractor": "ForensicCNN(width=16, depth=5, out_dim=16, stride=4)"}
    keys = ("f1_before", "f1_after", "loss_first_25", "loss_last_25")
    write_result("scl_plateau", {"settings": settings, "runs": rows}, table(
        ["loss", "padding", "F1 untrained", "F1 after", "loss, first 25 steps", "loss, last 25 steps"],
        ((r["loss"], r["padding"], *(f"{r[k]:.3f}" for k in keys)) for r in rows)))


if __name__ == "__main__":
    main()
