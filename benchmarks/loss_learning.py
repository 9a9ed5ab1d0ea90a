"""Which loss learns? Every loss variant trains the same small CNN from scratch on CPU, on the same
synthetic splices (sharp and blended boundaries), with the same budget, over several seeds; each
is scored by clustering held-out validation images.

    python benchmarks/loss_learning.py                 # the full grid (about 40 min on 2 cores)
    python benchmarks/loss_learning.py --steps 50 --seeds 1 --variants nce scl_within

Writes benchmarks/results/loss_learning.json (every run, with the machine) and loss_learning.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from focal_pl.clustering import Clusterer
from focal_pl.masks import resize_mask
from focal_pl.data import SyntheticForgeries
from focal_pl.data.transforms import stack_source
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import CircleLoss, DCLLoss, InfoNCELoss, SoftContrastiveLoss, TripletLoss
from focal_pl.metrics import ForgeryLocalizationMetrics
from focal_pl.provenance import machine as run_machine

RESULTS = Path(__file__).parent / "results"

# name -> (factory(total_steps), description)
VARIANTS = {
    "nce": (lambda s: InfoNCELoss(), "InfoNCE of the official code"),
    "triplet": (lambda s: TripletLoss(), "triplet, margin 0.3"),
    "dcl": (lambda s: DCLLoss(), "decoupled contrastive"),
    "circle": (lambda s: CircleLoss(), "circle, m 0.25, gamma 80"),
    "scl_hard_batch": (lambda s: SoftContrastiveLoss(soft=False, scope="batch"), "SCL hard W, batch scope"),
    "scl_hard": (lambda s: SoftContrastiveLoss(soft=False), "SCL hard W (no coefficients), image scope"),
    "scl_fcm": (lambda s: SoftContrastiveLoss(coefficients="fcm"), "SCL soft, paper read literally (fcm), m 2, 1 round"),
    "scl_fcm_m1.5": (lambda s: SoftContrastiveLoss(coefficients="fcm", fuzziness=1.5), "same, m 1.5"),
    "scl_fcm_warmup": (lambda s: SoftContrastiveLoss(coefficients="fcm", warmup_steps=s // 3), "fcm after a hard warm-up of 1/3 of the steps"),
    "scl_within": (lambda s: SoftContrastiveLoss(coefficients="within_class"), "SCL soft, within_class, m 2, 1 round"),
    "scl_within_m1.5": (lambda s: SoftContrastiveLoss(coefficients="within_class", fuzziness=1.5), "same, m 1.5"),
    "scl_within_m3": (lambda s: SoftContrastiveLoss(coefficients="within_class", fuzziness=3.0), "same, m 3"),
    "scl_within_m5": (lambda s: SoftContrastiveLoss(coefficients="within_class", fuzziness=5.0), "same, m 5"),
    "scl_within_m3_warmup": (lambda s: SoftContrastiveLoss(coefficients="within_class", fuzziness=3.0, warmup_steps=s // 3), "within_class m 3 after a hard warm-up of 1/3"),
    "scl_within_10rounds": (lambda s: SoftContrastiveLoss(coefficients="within_class", max_iter=10), "same, m 2, 10 rounds"),
    "scl_within_warmup": (lambda s: SoftContrastiveLoss(coefficients="within_class", warmup_steps=s // 3), "within_class after a hard warm-up of 1/3"),
    "scl_within_batch": (lambda s: SoftContrastiveLoss(coefficients="within_class", scope="batch"), "within_class, batch scope"),
}


def d4(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator):
    """One random flip / rotation of the dihedral group for the whole batch (masks follow)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    images, masks = torch.rot90(images, k, (2, 3)), torch.rot90(masks, k, (2, 3))
    if torch.rand(1, generator=generator) < 0.5:
        images, masks = images.flip(3), masks.flip(3)
    return images, masks


@torch.no_grad()
def evaluate(model, images, full_masks, clusterers: dict[str, Clusterer]) -> dict[str, float]:
    model.eval()
    features = torch.cat([model(images[i : i + 16]) for i in range(0, len(images), 16)])
    scores = {}
    for name, clusterer in clusterers.items():
        metric = ForgeryLocalizationMetrics()
        for fmap, truth in zip(features, full_masks):
            prediction, _ = clusterer(fmap)
            metric.update(resize_mask(prediction, tuple(truth.shape)), truth)
        values = metric.compute()
        scores[f"{name}_f1"] = float(values["f1"])
        scores[f"{name}_iou"] = float(values["iou"])
    model.train()
    return scores


def run_group(task: dict) -> list[dict]:
    """All variants for one (boundary, seed): the same data, the same initial weights."""
    torch.set_num_threads(1)
    boundary, seed, args = task["boundary"], task["seed"], task["args"]
    train_set = SyntheticForgeries(
        length=args["steps"] * args["batch"] // args["reuse"], size=args["source_size"],
        kinds=("splice",), boundary=boundary, seed=100 + seed, pool=args["pool"],
    )
    val_set = SyntheticForgeries(
        length=args["val"], size=args["source_size"], kinds=("splice",), boundary=boundary,
        seed=10_000, pool=args["pool"],
    )
    t0 = time.perf_counter()
    train_x, train_y, _ = stack_source(train_set, args["size"])
    val_x, _, val_full = stack_source(val_set, args["size"])
    data_seconds = time.perf_counter() - t0
    clusterers = {
        "kmeans": Clusterer("kmeans"),
        "hdbscan": Clusterer("hdbscan", min_cluster_size=0.05),
    }
    rows = []
    for variant in args["variants"]:
        torch.manual_seed(seed)
        model = ForensicCNN(width=32, depth=6, out_dim=64, stride=4, padding_mode="zeros")
        loss_fn = VARIANTS[variant][0](args["steps"])
        optimizer = torch.optim.Adam(model.parameters(), lr=args["lr"])
        order = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        untrained = evaluate(model, val_x, val_full, {"kmeans": clusterers["kmeans"]})
        losses = []
        for step in range(args["steps"]):
            index = torch.randint(0, len(train_x), (args["batch"],), generator=order)
            x, y = d4(train_x[index], train_y[index], order)
            loss_fn.set_step(step)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        train_seconds = time.perf_counter() - start
        scores = evaluate(model, val_x, val_full, clusterers)
        row = {
            "variant": variant, "boundary": boundary, "seed": seed,
            "untrained_kmeans_f1": untrained["kmeans_f1"], **scores,
            "final_loss": float(np.mean(losses[-20:])), "train_seconds": train_seconds,
            "data_seconds": data_seconds,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def machine() -> dict:
    return run_machine()


def summarize(rows: list[dict], variants: list[str]) -> dict:
    table = {}
    for variant in variants:
        for boundary in ("sharp", "blended"):
            picked = [r for r in rows if r["variant"] == variant and r["boundary"] == boundary]
            if not picked:
                continue
            entry = {}
            for key in ("kmeans_f1", "hdbscan_f1", "hdbscan_iou", "untrained_kmeans_f1"):
                values = [r[key] for r in picked]
                entry[key] = (statistics.mean(values), statistics.pstdev(values), len(values))
            table[(variant, boundary)] = entry
    return table


def write_markdown(path: Path, table: dict, variants: list[str], meta: dict) -> None:
    def cell(key, variant, boundary):
        entry = table.get((variant, boundary))
        if not entry:
            return "-"
        mean, std, _ = entry[key]
        return f"{mean:.3f} ± {std:.3f}"

    lines = [
        "# Loss learning benchmark (CPU, from scratch)",
        "",
        f"Machine: {meta['machine']['processor']}, {meta['machine']['cpu_count']} cores, "
        f"torch {meta['machine']['torch']}, {meta['machine']['date']}.",
        f"Model: ForensicCNN (6 conv layers, zero padding, 64-d features at 1/4 resolution), trained from scratch; "
        f"{meta['args']['steps']} steps of batch {meta['args']['batch']} at {meta['args']['size']} px, "
        f"Adam lr {meta['args']['lr']}, {len(meta['args']['seeds'])} seeds; synthetic splices "
        f"(donor with its own resampling / noise / JPEG / blur history) from "
        f"{meta['args']['pool'] or 'scikit-image sample photos'}.",
        f"Score: macro F1 at image resolution on {meta['args']['val']} validation images per boundary "
        f"type, k-means (k = 2) and HDBSCAN (min cluster 5%); mean ± std over seeds.",
        f"Untrained model: k-means F1 {table[(variants[0], 'sharp')]['untrained_kmeans_f1'][0]:.3f} (sharp).",
        "",
        "| loss | what | sharp k-means F1 | blended k-means F1 | sharp HDBSCAN F1 | blended HDBSCAN F1 |",
        "|---|---|---|---|---|---|",
    ]
    for variant in variants:
        lines.append(
            f"| `{variant}` | {VARIANTS[variant][1]} | {cell('kmeans_f1', variant, 'sharp')} | "
            f"{cell('kmeans_f1', variant, 'blended')} | {cell('hdbscan_f1', variant, 'sharp')} | "
            f"{cell('hdbscan_f1', variant, 'blended')} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="training / validation side in px")
    parser.add_argument("--source-size", type=int, default=128, help="side of the generated composites")
    parser.add_argument("--reuse", type=int, default=2, help="each training image is seen about this often")
    parser.add_argument("--val", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--boundaries", nargs="+", default=["sharp", "blended"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--pool", default=None, help="folder of pristine photos (default: scikit-image's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="loss_learning")
    args = vars(parser.parse_args())
    tasks = [{"boundary": b, "seed": s, "args": args} for s in args["seeds"] for b in args["boundaries"]]
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(args["workers"]) as pool:
        rows = [row for group in pool.imap_unordered(run_group, tasks) for row in group]
    meta = {"machine": machine(), "args": args, "wall_seconds": time.perf_counter() - started}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args['out']}.json").write_text(json.dumps({**meta, "runs": rows}, indent=1))
    table = summarize(rows, args["variants"])
    write_markdown(RESULTS / f"{args['out']}.md", table, args["variants"], meta)
    print((RESULTS / f"{args['out']}.md").read_text())


if __name__ == "__main__":
    main()
