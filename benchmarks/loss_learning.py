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
from focal_pl.module import FocalModule

from common import LOSSES, cpu_fit, in_processes, mean_std, show, splice_data, study_parser, table, timed, write_result

def run(task: tuple[str, str, int, dict]) -> dict:
    """One fit of one variant: the seed fixes the initial weights, the training set and its order."""
    variant, boundary, seed, a = task
    with cpu_fit(seed, a["steps"], sanity=-1) as (trainer, record, _):
        data = splice_data(a, seed, a["source_size"], boundary)
        module = FocalModule(ForensicCNN(width=32, depth=6, out_dim=64, stride=4, padding_mode="zeros"),
                             LOSSES[variant][0](a["steps"]), Clusterer("kmeans"),
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
    cells = [[f"`{v}`", LOSSES[v][1], *(mean_std([r[k] for r in rows if r["variant"] == v and r["boundary"] == b])
                                          for b, k in columns)] for v in variants]
    untrained = statistics.mean(r["untrained_kmeans_f1"] for r in rows)
    return [*table(["loss", "what", *(f"{b} {names[k]} F1" for b, k in columns)], cells), "",
            f"Untrained (k-means): {untrained:.3f} (mean over every fit's start)."]


def main() -> None:
    options = study_parser(__doc__, "loss_learning", None)
    options.add_argument("--source-size", type=int, default=128, help="side of the generated composites")
    options.add_argument("--boundaries", nargs="+", default=["sharp", "blended"], choices=["sharp", "blended"],
                         help="splices pasted sharp or blended")
    options.add_argument("--variants", nargs="+", default=list(LOSSES), choices=list(LOSSES), help="the losses")
    a = vars(options.parse_args())
    tasks = [(v, b, s, a) for s in a["seeds"] for b in a["boundaries"] for v in a["variants"]]
    wall, _, rows = timed(lambda: in_processes(run, tasks, a["jobs"]))
    write_result(a["out"], {"settings": a, "wall_seconds": wall, "runs": rows},
                 tables(rows, a["variants"], a["boundaries"]))


if __name__ == "__main__":
    main()
