"""Which loss learns? Each loss variant trains the same small CNN from scratch on the CPU through the
package's own loop (``FocalModule`` + ``ForgeryDataModule`` + a Lightning ``Trainer``), on the same
synthetic splices (sharp or blended boundaries), with the same budget, over several seeds; each is
scored by the validation callback (``ValidationRecord``): k-means during the fit (the untrained
score is its sanity check), then HDBSCAN in one ``trainer.validate`` of the trained model.

    python benchmarks/loss_learning.py                       # the full grid (17 x 2 x 3 fits; about 2 h on 2 cores)
    python benchmarks/loss_learning.py --variants nce scl_within --seeds 0 --boundaries sharp --out /tmp/ll

Writes benchmarks/results/<out>.json and prints the table (mean ± std over seeds); the pages are
hand-written.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import lightning as L
import torch

from focal_pl.clustering import Clusterer
from focal_pl.data import ForgeryDataModule, SyntheticForgeries
from focal_pl.evaluation import ValidationRecord
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import CircleLoss, DCLLoss, InfoNCELoss, SoftContrastiveLoss, TripletLoss
from focal_pl.module import FocalModule

from common import RESULTS, cpu_trainer, mean_std, table, write_result

SCL = SoftContrastiveLoss
# name -> (loss for a run of s steps, what it is)
VARIANTS = {
    "nce": (lambda s: InfoNCELoss(), "InfoNCE of the official code"),
    "triplet": (lambda s: TripletLoss(), "triplet, margin 0.3"),
    "dcl": (lambda s: DCLLoss(), "decoupled contrastive"),
    "circle": (lambda s: CircleLoss(), "circle, m 0.25, gamma 80"),
    "scl_hard_batch": (lambda s: SCL(soft=False, scope="batch"), "SCL hard W, batch scope"),
    "scl_hard": (lambda s: SCL(soft=False), "SCL hard W (no coefficients), image scope"),
    "scl_fcm": (lambda s: SCL(coefficients="fcm"), "SCL soft, paper read literally (fcm), m 2, 1 round"),
    "scl_fcm_m1.5": (lambda s: SCL(coefficients="fcm", fuzziness=1.5), "same, m 1.5"),
    "scl_fcm_warmup": (lambda s: SCL(coefficients="fcm", warmup_steps=s // 3), "fcm after a hard warm-up of 1/3"),
    "scl_within": (lambda s: SCL(coefficients="within_class"), "SCL soft, within_class, m 2, 1 round"),
    "scl_within_m1.5": (lambda s: SCL(coefficients="within_class", fuzziness=1.5), "same, m 1.5"),
    "scl_within_m3": (lambda s: SCL(coefficients="within_class", fuzziness=3.0), "same, m 3"),
    "scl_within_m5": (lambda s: SCL(coefficients="within_class", fuzziness=5.0), "same, m 5"),
    "scl_within_m3_warmup": (lambda s: SCL(coefficients="within_class", fuzziness=3.0, warmup_steps=s // 3),
                             "within_class m 3 after a hard warm-up of 1/3"),
    "scl_within_10rounds": (lambda s: SCL(coefficients="within_class", max_iter=10), "same, m 2, 10 rounds"),
    "scl_within_warmup": (lambda s: SCL(coefficients="within_class", warmup_steps=s // 3),
                          "within_class after a hard warm-up of 1/3"),
    "scl_within_batch": (lambda s: SCL(coefficients="within_class", scope="batch"), "within_class, batch scope"),
}


def run(task: tuple[str, str, int, dict]) -> dict:
    """One fit of one variant: the seed fixes the initial weights, the training set and its order."""
    variant, boundary, seed, a = task
    torch.set_num_threads(1)
    L.seed_everything(seed, verbose=False)
    splices = functools.partial(SyntheticForgeries, size=a["source_size"], kinds=["splice"], boundary=boundary,
                                pool=a["pool"])
    data = ForgeryDataModule(train=splices(a["steps"] * a["batch"] // a["reuse"], seed=100 + seed),
                             val=splices(a["val"], seed=10_000), image_size=a["size"], batch_size=a["batch"],
                             num_workers=0)
    module = FocalModule(ForensicCNN(width=32, depth=6, out_dim=64, stride=4, padding_mode="zeros"),
                         VARIANTS[variant][0](a["steps"]), Clusterer("kmeans"),
                         optimizer=functools.partial(torch.optim.Adam, lr=a["lr"]), scheduler=None)
    evaluator = ValidationRecord(save_images=0, metrics_file=None)
    with tempfile.TemporaryDirectory() as folder:
        trainer = cpu_trainer(folder, [evaluator], a["steps"], sanity=-1)
        start = time.perf_counter()
        trainer.fit(module, data)
        seconds = time.perf_counter() - start
        untrained, kmeans = evaluator.record["untrained"], evaluator.record["final"]  # k-means: the fit's clusterer
        module.clusterer = Clusterer("hdbscan", min_cluster_size=0.05)
        trainer.validate(module, data, verbose=False)
    hdbscan = evaluator.record["final"]
    row = {"variant": variant, "boundary": boundary, "seed": seed, "untrained_kmeans_f1": untrained["f1"],
           "kmeans_f1": kmeans["f1"], "kmeans_iou": kmeans["iou"], "hdbscan_f1": hdbscan["f1"],
           "hdbscan_iou": hdbscan["iou"], "fit_seconds": seconds}
    print(json.dumps(row), flush=True)
    return row


def tables(rows: list[dict], variants: list[str], boundaries: list[str]) -> list[str]:
    """Mean ± std (population) over seeds of k-means and HDBSCAN macro F1, per variant and boundary."""
    columns = [(b, key) for key in ("kmeans_f1", "hdbscan_f1") for b in boundaries]
    names = {"kmeans_f1": "k-means", "hdbscan_f1": "HDBSCAN"}
    cells = [[f"`{v}`", VARIANTS[v][1], *(mean_std([r[k] for r in rows if r["variant"] == v and r["boundary"] == b])
                                          for b, k in columns)] for v in variants]
    untrained = statistics.mean(r["untrained_kmeans_f1"] for r in rows)
    return [*table(["loss", "what", *(f"{b} {names[k]} F1" for b, k in columns)], cells), "",
            f"Untrained (k-means): {untrained:.3f} (mean over every fit's start)."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="training / validation side in px")
    parser.add_argument("--source-size", type=int, default=128, help="side of the generated composites")
    parser.add_argument("--reuse", type=int, default=2, help="epochs over the training set")
    parser.add_argument("--val", type=int, default=48, help="validation images per boundary type")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--boundaries", nargs="+", default=["sharp", "blended"], choices=["sharp", "blended"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--pool", default=None, help="folder of pristine photos (default: scikit-image's)")
    parser.add_argument("--jobs", type=int, default=2, help="fits at a time (one process and one thread each)")
    parser.add_argument("--out", default=str(RESULTS / "loss_learning"), help="results path without .json")
    args = vars(parser.parse_args())
    tasks = [(v, b, s, args) for s in args["seeds"] for b in args["boundaries"] for v in args["variants"]]
    start = time.perf_counter()
    with ProcessPoolExecutor(args["jobs"], mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(run, tasks))
    out = Path(args["out"])
    write_result(out.name, {"settings": args, "wall_seconds": time.perf_counter() - start, "runs": rows},
                 tables(rows, args["variants"], args["boundaries"]), results=out.parent)


if __name__ == "__main__":
    main()
