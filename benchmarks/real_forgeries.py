"""Real forgeries at CPU scale: every loss and the cross-entropy baseline train the same small CNN from
scratch on synthetic splices over seeds, then are tested on the CASIA v1 sample at image resolution.

    python benchmarks/real_forgeries.py                  # 3 seeds x (5 methods + untrained)
    python benchmarks/real_forgeries.py --seeds 0 --methods scl ce --steps 20 --out /tmp/rf
"""

from __future__ import annotations

import functools
import json

import numpy as np
import torch

from focal_pl.clustering import Clusterer
from focal_pl.data.sources import CASIA
from focal_pl.evaluation import TestReport
from focal_pl.evaluation.metrics import pixel_scores
from focal_pl.extractors import ForensicCNN
from focal_pl.module import FocalModule, PixelClassifier
from focal_pl.training.schedulers import CosineToEnd

from common import LOSSES, SHARED, cpu_fit, cpu_trainer, in_processes, mean_std, splice_data, study_parser, table, timed, write_result

# the losses of common.LOSSES by this study's names; ce: PixelClassifier (cross-entropy, 1x1 head, threshold 0.5)
METHODS = {"scl": "scl_within", "scl_fcm": "scl_fcm", "scl_hard": "scl_hard", "nce": "nce", "ce": None,
           "untrained": None}
METRICS = ("f1", "f1_forged", "iou", "image_auc", "false_alarm_rate", "false_alarm_area")


def test(module: FocalModule, data, folder: str, image_score: str) -> dict:
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
    out = {"method": method, "seed": seed}
    with cpu_fit(seed, a["steps"]) as (trainer, record, folder):
        extractor = ForensicCNN(width=32, depth=6, out_dim=64, stride=4)
        hdbscan = Clusterer("hdbscan", min_cluster_size=0.05, grid=64)
        options = {"optimizer": functools.partial(torch.optim.Adam, lr=a["lr"]),
                   "scheduler": functools.partial(CosineToEnd, eta_min=a["lr_end"])}
        module = (PixelClassifier(extractor, threshold=0.5, **options) if method == "ce" else
                  FocalModule(extractor, LOSSES[METHODS[method]][0](a["steps"]) if METHODS[method] else None,
                              hdbscan, **options))
        data = splice_data(a, seed, a["size"], test=CASIA(a["casia"], include_authentic=True), native_resolution=True)
        train = trainer.validate if method == "untrained" else trainer.fit
        out.update(train_seconds=timed(lambda: train(module, data))[0], synthetic_f1=record.record["final"]["f1"])
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
    """The methods with their own masks; HDBSCAN against k-means; the image scores' quantiles."""
    def stat(method: str, masker: str | None, key: str) -> str:
        return mean_std([r[masker][key] if masker else r[key] for r in runs
                         if r["method"] == method and (not masker or masker in r)])

    def quantiles(method: str, kind: str) -> str:
        scores = [s for r in runs if r["method"] == method for s in r["hdbscan"]["image_scores"][kind]]
        return " / ".join(f"{q:.3f}" for q in np.quantile(scores, [0.1, 0.5, 0.9]))

    own = {m: "threshold" if m == "ce" else "hdbscan" for m in methods}
    pairs = [(c, k) for k in ("false_alarm_rate", "false_alarm_area", "f1_forged") for c in ("hdbscan", "kmeans")]
    return [*table(["method", "masks by", "macro F1", "forged F1", "IoU", "image AUC (heterogeneity)", "false alarms",
                    "false-alarm area", "synthetic macro F1"],
                   ([f"`{m}`", own[m], *(stat(m, own[m], k) for k in METRICS[:3]), stat(m, "hdbscan", "image_auc"),
                     *(stat(m, own[m], k) for k in METRICS[4:]), stat(m, None, "synthetic_f1")] for m in methods)), "",
            *table(["method", "HDBSCAN false alarms", "k-means false alarms", "HDBSCAN FA area", "k-means FA area",
                    "HDBSCAN forged F1", "k-means forged F1"],
                   ([f"`{m}`", *(stat(m, c, k) for c, k in pairs)] for m in methods)), "",
            *table(["method", "heterogeneity, authentic q10 / q50 / q90", "forged q10 / q50 / q90"],
                   ([f"`{m}`", quantiles(m, "authentic"), quantiles(m, "forged")] for m in methods))]


def main() -> None:
    options = study_parser(__doc__, "real_forgeries", str(SHARED / "pristine"))
    options.add_argument("--casia", default=str(SHARED / "real" / "CASIA1_samples"), help="CASIA v1 root")
    options.add_argument("--lr-end", type=float, default=1e-4, help="cosine annealing ends here")
    options.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="what is trained")
    a = vars(options.parse_args())
    tasks = [(m, s, a) for s in a["seeds"] for m in a["methods"]]
    wall, _, (runs, trivial) = timed(lambda: (in_processes(run, tasks, a["jobs"]), trivial_masks(a["casia"])))
    said = "; ".join(f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in t.items()) for k, t in trivial.items())
    write_result(a["out"], {"settings": a, "trivial": trivial, "wall_seconds": wall, "runs": runs},
                 [*tables(runs, a["methods"]), "", said])


if __name__ == "__main__":
    main()
