"""Which loss learns? Each variant trains the same small CNN from scratch on the same synthetic splices
(sharp or blended) over seeds: k-means F1 during the fit (and untrained), HDBSCAN F1 after it.

    python benchmarks/loss_learning.py                       # the full grid (17 x 2 x 3 fits; about 2 h on 2 cores)
    python benchmarks/loss_learning.py --variants nce scl_within --seeds 0 --boundaries sharp --out /tmp/ll
    python benchmarks/loss_learning.py --variants nce nce_original scl_within --seeds 0 1 2 --out loss_learning_nce
"""

from __future__ import annotations

import functools
import statistics

import torch

from focal_pl.clustering import Clusterer
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import CircleLoss, DCLLoss, InfoNCELoss, NCELoss, SoftContrastiveLoss, TripletLoss
from focal_pl.module import FocalModule

from common import cpu_fit, in_processes, mean_std, show, splice_data, study_parser, table, timed, write_result

SCL = SoftContrastiveLoss
# name -> (loss for a run of s steps, what it is)
VARIANTS = {
    "nce": (lambda s: InfoNCELoss(), "InfoNCE of the official code (the mean of all positives)"),
    "nce_original": (lambda s: NCELoss(), "the original NCE, [40]: one positive per query"),
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
    with cpu_fit(seed, a["steps"], sanity=-1) as (trainer, record, _):
        data = splice_data(a, seed, a["source_size"], boundary)
        module = FocalModule(ForensicCNN(width=32, depth=6, out_dim=64, stride=4, padding_mode="zeros"),
                             VARIANTS[variant][0](a["steps"]), Clusterer("kmeans"),
                             optimizer=functools.partial(torch.optim.Adam, lr=a["lr"]), scheduler=None)
        seconds = timed(lambda: trainer.fit(module, data))[0]
        untrained, kmeans = record.record["untrained"], record.record["final"]  # k-means: the fit's clusterer
        module.clusterer = Clusterer("hdbscan", min_cluster_size=0.05)
        trainer.validate(module, data, verbose=False)
    hdbscan = record.record["final"]
    return show({"variant": variant, "boundary": boundary, "seed": seed, "untrained_kmeans_f1": untrained["f1"],
                 "kmeans_f1": kmeans["f1"], "kmeans_iou": kmeans["iou"], "hdbscan_f1": hdbscan["f1"],
                 "hdbscan_iou": hdbscan["iou"], "fit_seconds": seconds})


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
    options = study_parser(__doc__, "loss_learning", None)
    options.add_argument("--source-size", type=int, default=128, help="side of the generated composites")
    options.add_argument("--boundaries", nargs="+", default=["sharp", "blended"], choices=["sharp", "blended"],
                         help="splices pasted sharp or blended")
    options.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="the losses")
    a = vars(options.parse_args())
    tasks = [(v, b, s, a) for s in a["seeds"] for b in a["boundaries"] for v in a["variants"]]
    wall, _, rows = timed(lambda: in_processes(run, tasks, a["jobs"]))
    write_result(a["out"], {"settings": a, "wall_seconds": wall, "runs": rows},
                 tables(rows, a["variants"], a["boundaries"]))


if __name__ == "__main__":
    main()
