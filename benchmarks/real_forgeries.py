"""Evidence on real forgeries at CPU scale: small models trained from scratch on synthetic splices made
from real photos, then tested on the real CASIA v1 sample (forged and authentic images).

Every loss (the default SCL, SCL read literally, hard SCL, InfoNCE) and the cross-entropy baseline
(``PixelClassifier``) trains the same ``ForensicCNN`` from the same initial weights on the same
synthetic data for the same number of steps, over several seeds, through ``ForgeryDataModule`` and a
Lightning ``Trainer`` (the validation callback scores held-out synthetic splices); an untrained
network of each seed is the reference. Each model is then tested on CASIA by the package's test
report (``TestReport``): every image at its own resolution (the data module's ``native_resolution``
tiles), masks from HDBSCAN and from k-means on the features (the baseline: also its own threshold
masks on its logits), the heterogeneity image score, false alarms on the authentic images.

    python benchmarks/real_forgeries.py                  # 3 seeds x (5 methods + untrained)
    python benchmarks/real_forgeries.py --seeds 0 --methods scl ce --steps 20 --out /tmp/rf

Reads the photos and the CASIA images from ../shared/data (``--pool``, ``--casia``). Writes
benchmarks/results/<out>.json and prints the tables (mean ± std over seeds); the page is hand-written.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import lightning as L
import numpy as np
import torch

from focal_pl.clustering import Clusterer
from focal_pl.data import ForgeryDataModule, SyntheticForgeries
from focal_pl.data.sources import CASIA
from focal_pl.evaluation import TestReport, ValidationRecord
from focal_pl.evaluation.metrics import pixel_scores
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import InfoNCELoss, SoftContrastiveLoss
from focal_pl.module import FocalModule, PixelClassifier
from focal_pl.training.schedulers import CosineToEnd

from common import RESULTS, cpu_trainer, mean_std, table, write_result

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = {
    "scl": lambda: SoftContrastiveLoss(),
    "scl_fcm": lambda: SoftContrastiveLoss(coefficients="fcm"),
    "scl_hard": lambda: SoftContrastiveLoss(soft=False),
    "nce": lambda: InfoNCELoss(),
    "ce": None,  # PixelClassifier: cross-entropy, 1x1 head, threshold 0.5
    "untrained": None,
}
METRICS = ("f1", "f1_forged", "iou", "image_auc", "false_alarm_rate", "false_alarm_area")


class Baseline(PixelClassifier):
    """``PixelClassifier`` whose tiled (native-resolution) features go through its head, as its
    squashed ones do: the package's ``FocalModule.features`` tiles the extractor alone, which hands the
    threshold masker 64 channels instead of one logit (reported; the 1x1 head commutes with the
    stitching's weighted mean, so this equals tiling the whole classifier)."""

    def features(self, batch):
        features = super().features(batch)
        return self.head(features) if batch.tile else features


def test(module: FocalModule, data: ForgeryDataModule, folder: str, image_score: str) -> dict:
    """``trainer.test`` on CASIA at image resolution: the set's numbers and every image's score."""
    report = TestReport(resolution="image", image_score=image_score, save_predictions=False, output_dir=folder,
                        paper_row=None)
    cpu_trainer(folder, [report]).test(module, data, verbose=False)
    scores = {kind: [r["image_score"] for r in report.rows if r["authentic"] == (kind == "authentic")]
              for kind in ("authentic", "forged")}
    return {**{k: report.table[0][k] for k in METRICS}, "image_scores": scores}


def run(task: tuple[str, int, dict]) -> dict:
    """Train one (method, seed), validate it on synthetic splices, test it on CASIA with each masker."""
    method, seed, a = task
    torch.set_num_threads(1)
    L.seed_everything(seed, verbose=False)
    extractor = ForensicCNN(width=32, depth=6, out_dim=64, stride=4)
    hdbscan = Clusterer("hdbscan", min_cluster_size=0.05, grid=64)
    options = {"optimizer": functools.partial(torch.optim.Adam, lr=a["lr"]),
               "scheduler": functools.partial(CosineToEnd, eta_min=a["lr_end"])}
    module = (Baseline(extractor, threshold=0.5, **options) if method == "ce" else
              FocalModule(extractor, METHODS[method]() if METHODS[method] else None, hdbscan, **options))
    splices = functools.partial(SyntheticForgeries, size=a["size"], pool=a["pool"], kinds=["splice"])
    data = ForgeryDataModule(train=splices(a["steps"] * a["batch"] // a["reuse"], seed=100 + seed),
                             val=splices(a["val"], seed=10_000), test=CASIA(a["casia"], include_authentic=True),
                             image_size=a["size"], batch_size=a["batch"], num_workers=0, native_resolution=True)
    evaluator = ValidationRecord(save_images=0, metrics_file=None)
    out = {"method": method, "seed": seed}
    with tempfile.TemporaryDirectory() as folder:
        trainer = cpu_trainer(folder, [evaluator], a["steps"])
        start = time.perf_counter()
        trainer.validate(module, data, verbose=False) if method == "untrained" else trainer.fit(module, data)
        out.update(train_seconds=time.perf_counter() - start, synthetic_f1=evaluator.record["final"]["f1"])
        if method == "ce":
            out["threshold"] = test(module, data, folder, "forged_share")
        for name, masker in (("hdbscan", hdbscan), ("kmeans", Clusterer("kmeans", grid=64, seed=seed))):
            features = FocalModule(module.extractor, clusterer=masker)  # the extractor's features, clustered
            out[name] = test(features, data, folder, "heterogeneity" if name == "hdbscan" else "forged_share")
    print(json.dumps({k: v if not isinstance(v, dict) else v["f1_forged"] for k, v in out.items()}), flush=True)
    return out


def trivial_masks(root: str) -> dict:
    """Macro / forged F1 and IoU of calling every pixel of each forged CASIA image pristine or forged."""
    source = CASIA(root, include_authentic=True)
    truths = [torch.from_numpy(m > 0) for m in (source[i][1] for i in range(len(source))) if m.any()]
    return {name: {k: float(np.mean([pixel_scores(torch.full_like(t, fill), t)[k] for t in truths]))
                   for k in ("f1", "f1_forged", "iou")} for name, fill in (("empty mask", False), ("full mask", True))}


def tables(runs: list[dict], methods: list[str]) -> list[str]:
    def stat(method: str, masker: str | None, key: str) -> str:
        return mean_std([r[masker][key] if masker else r[key] for r in runs
                         if r["method"] == method and (not masker or masker in r)])

    own = {m: "threshold" if m == "ce" else "hdbscan" for m in methods}
    lines = table(["method", "masks by", "macro F1", "forged F1", "IoU", "image AUC (heterogeneity)", "false alarms",
                   "false-alarm area", "synthetic macro F1"],
                  ([f"`{m}`", own[m], *(stat(m, own[m], k) for k in METRICS[:3]), stat(m, "hdbscan", "image_auc"),
                    *(stat(m, own[m], k) for k in METRICS[4:]), stat(m, None, "synthetic_f1")] for m in methods))
    lines += ["", *table(["method", "HDBSCAN false alarms", "k-means false alarms", "HDBSCAN FA area",
                          "k-means FA area", "HDBSCAN forged F1", "k-means forged F1"],
                         ([f"`{m}`", *(stat(m, c, k) for k in ("false_alarm_rate", "false_alarm_area", "f1_forged")
                                       for c in ("hdbscan", "kmeans"))] for m in methods))]
    quantiles = lambda m, kind: " / ".join(f"{q:.3f}" for q in np.quantile(  # noqa: E731
        [s for r in runs if r["method"] == m for s in r["hdbscan"]["image_scores"][kind]], [0.1, 0.5, 0.9]))
    return lines + ["", *table(["method", "heterogeneity, authentic q10 / q50 / q90", "forged q10 / q50 / q90"],
                               ([f"`{m}`", quantiles(m, "authentic"), quantiles(m, "forged")] for m in methods))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default=str(SHARED / "pristine"), help="folder of pristine photos")
    parser.add_argument("--casia", default=str(SHARED / "real" / "CASIA1_samples"), help="CASIA v1 root")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="side of the composites, of training and of the tiles")
    parser.add_argument("--reuse", type=int, default=2, help="epochs over the training set")
    parser.add_argument("--val", type=int, default=48, help="held-out synthetic splices (in-domain check)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-end", type=float, default=1e-4, help="cosine annealing ends here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--jobs", type=int, default=2, help="fits at a time (one process and one thread each)")
    parser.add_argument("--out", default=str(RESULTS / "real_forgeries"), help="results path without .json")
    args = vars(parser.parse_args())
    start = time.perf_counter()
    tasks = [(m, s, args) for s in args["seeds"] for m in args["methods"]]
    with ProcessPoolExecutor(args["jobs"], mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(run, tasks))
    trivial = trivial_masks(args["casia"])
    said = "; ".join(f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in t.items()) for k, t in trivial.items())
    out = Path(args["out"])
    write_result(out.name, {"settings": args, "trivial": trivial, "wall_seconds": time.perf_counter() - start,
                            "runs": runs}, [*tables(runs, args["methods"]), "", said], results=out.parent)


if __name__ == "__main__":
    main()
