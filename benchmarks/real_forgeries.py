"""Evidence on real forgeries, at CPU scale: small models trained from scratch on synthetic forgeries
made from real photos, scored on the real CASIA v1 sample (forged and authentic images).

Every loss (the default SCL, SCL read literally, hard SCL, InfoNCE) and the cross-entropy baseline
trains the same ``ForensicCNN`` from the same initial weights on the same synthetic data for the
same number of steps, over several seeds; an untrained network of each seed is scored as the
reference. Each model is then run on every CASIA image at the image's own size and scored with the
project's evaluation code (``score_batch`` + ``aggregate``): HDBSCAN and k-means on the features
(the baseline: also its own threshold masker on its logits), the heterogeneity image score, false
alarms on the authentic images.

    python benchmarks/real_forgeries.py        # the full run: 3 seeds x 5 methods + untrained (see the .md's wall time)
    python benchmarks/real_forgeries.py --steps 20 --seeds 0 --methods scl ce --val 16 --out /tmp/rf_smoke
    python benchmarks/real_forgeries.py --from-json benchmarks/results/real_forgeries.json   # redo the summaries

Reads the photos and CASIA images from ../shared/data (``--pool``, ``--casia``) at run time; nothing
is copied. The synthetic sets are generated once (in parallel) into a temporary folder, removed at the
end. Writes benchmarks/results/<out>.json (settings, machine, every per-seed number, per-image scores)
and <out>.md (``--out`` may be a path).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import re
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from focal_pl.baseline import PixelClassifier
from focal_pl.clustering import Clusterer
from focal_pl.data import SyntheticForgeries
from focal_pl.data.sources import CASIA
from focal_pl.data.synthetic import PhotoPool
from focal_pl.data.transforms import image_to_tensor, stack_source
from focal_pl.evaluation.report import aggregate
from focal_pl.data.batch import Batch
from focal_pl.evaluation.scoring import Scorer

from focal_pl.extractors import ForensicCNN
from focal_pl.losses import InfoNCELoss, SoftContrastiveLoss
from focal_pl.metrics import image_auc
from focal_pl.provenance import machine, machine_line
from loss_learning import d4  # the same batch augmentation as the loss benchmark (benchmarks/ is on the path)

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# name -> (loss factory or None for the CE baseline, description); "untrained" is the reference
METHODS = {
    "scl": (lambda: SoftContrastiveLoss(), "SCL, the default (soft, coefficients within_class)"),
    "scl_fcm": (lambda: SoftContrastiveLoss(coefficients="fcm"), "SCL read literally (coefficients fcm)"),
    "scl_hard": (lambda: SoftContrastiveLoss(soft=False), "hard SCL (soft=False, ground-truth W)"),
    "nce": (lambda: InfoNCELoss(), "InfoNCE of the official code"),
    "ce": (None, "cross-entropy baseline (PixelClassifier, 1x1 head, ThresholdMasker 0.5)"),
}
CONTRASTIVE = ("scl", "scl_fcm", "scl_hard", "nce")
REFERENCE = "untrained"
SET_NAME = "casia1"


# ---------------------------------------------------------------- data


_POOLS: dict[str, PhotoPool] = {}


def make_items(task: dict) -> tuple[int, np.ndarray, np.ndarray]:
    """Items [start, stop) of one synthetic set as uint8 tensors at the training size."""
    torch.set_num_threads(1)
    a = task["args"]
    source = SyntheticForgeries(length=task["length"], size=a["source_size"], pool=a["pool"],
                                kinds=tuple(a["kinds"]), seed=task["seed"])
    # one decoded pool per worker process: the library's PhotoPool keeps its last 32 photos and a new
    # SyntheticForgeries starts with an empty one; the 75 photos decode once per worker instead
    if a["pool"] not in _POOLS:
        _POOLS[a["pool"]] = PhotoPool(a["pool"], cache=1024)
    source.pool = _POOLS[a["pool"]]
    part = _Slice(source, task["start"], task["stop"])
    images, masks, _ = stack_source(part, a["size"])
    return task["start"], images.mul(255).round().to(torch.uint8).numpy(), masks.to(torch.uint8).numpy()


class _Slice:
    def __init__(self, source, start: int, stop: int) -> None:
        self.source, self.start, self.stop = source, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int):
        return self.source[self.start + index]


def build_sets(pool: mp.pool.Pool, args: dict, folder: Path) -> dict[str, str]:
    """Every training set (one per seed) and the synthetic validation set, generated in parallel and
    saved as uint8 tensors; returns name -> file."""
    length = args["steps"] * args["batch"] // args["reuse"]
    sets = {f"train{s}": (100 + s, length) for s in args["seeds"]}
    sets["val"] = (10_000, args["val"])
    chunk = 100
    tasks = [{"set": name, "seed": seed, "length": n, "start": i, "stop": min(n, i + chunk), "args": args}
             for name, (seed, n) in sets.items() for i in range(0, n, chunk)]
    parts: dict[str, list] = defaultdict(list)
    for task, (start, images, masks) in zip(tasks, pool.imap(make_items, tasks)):
        parts[task["set"]].append((start, images, masks))
    files = {}
    for name, chunks in parts.items():
        chunks.sort(key=lambda c: c[0])
        images = torch.from_numpy(np.concatenate([c[1] for c in chunks]))
        masks = torch.from_numpy(np.concatenate([c[2] for c in chunks]))
        files[name] = str(folder / f"{name}.pt")
        torch.save({"images": images, "masks": masks}, files[name])
    return files


def casia_batches(root: str, batch: int) -> list[dict]:
    """The CASIA sample (forged + authentic) as score_batch batches of same-shape images at their
    own size: model inputs plus the host-side truths, names and sizes."""
    source = CASIA(root, include_authentic=True)
    by_shape: dict[tuple, list] = defaultdict(list)
    for i in range(len(source)):
        image, mask, meta = source[i]
        by_shape[image.shape[:2]].append((image, mask, meta))
    out = []
    for shape, items in sorted(by_shape.items()):
        for i in range(0, len(items), batch):
            part = items[i : i + batch]
            out.append(Batch(
                image=torch.stack([image_to_tensor(im) for im, _, _ in part]),
                mask_full=[torch.from_numpy(m.astype(bool)) for _, m, _ in part],
                truth=[True] * len(part),
                size=[tuple(m.shape) for _, m, _ in part],
                name=[Path(meta["name"]).stem for _, _, meta in part],
            ))
    return out


def synthetic_batches(data: dict, batch: int) -> list[dict]:
    images, masks = data["images"], data["masks"]
    return [Batch(image=images[i : i + batch].float().div(255), mask_full=[m[0].bool() for m in masks[i : i + batch]],
                  truth=[True] * len(images[i : i + batch]), size=[tuple(m.shape[-2:]) for m in masks[i : i + batch]],
                  name=[f"val{j}" for j in range(i, min(len(images), i + batch))]) for i in range(0, len(images), batch)]


# ---------------------------------------------------------------- training


def build_model(method: str, seed: int, args: dict):
    """(module, extractor, loss): the same initial extractor weights for every method of a seed."""
    torch.manual_seed(seed)
    extractor = ForensicCNN(width=args["width"], depth=args["depth"], out_dim=args["out_dim"], stride=args["stride"])
    if method == "ce":
        module = PixelClassifier(extractor, threshold=args["ce_threshold"])
        return module, extractor, module.loss
    return extractor, extractor, (METHODS[method][0]() if method in METHODS else None)


def train(method: str, seed: int, data: dict, args: dict) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    module, extractor, loss_fn = build_model(method, seed, args)
    info = {"train_seconds": 0.0, "final_loss": math.nan}
    if method == REFERENCE:
        return module, extractor, info
    images, masks = data["images"], data["masks"]
    optimizer = torch.optim.Adam(module.parameters(), lr=args["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args["steps"], eta_min=args["lr_end"])
    loss_fn.set_total_steps(args["steps"])
    order = torch.Generator().manual_seed(seed)
    module.train()
    losses, start = [], time.perf_counter()
    every = max(1, args["steps"] // 4)
    for step in range(args["steps"]):
        index = torch.randint(0, len(images), (args["batch"],), generator=order)
        x, y = d4(images[index].float().div_(255), masks[index].float(), order)
        loss_fn.set_step(step)
        loss = loss_fn(module(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % every == 0:
            print(f"  [{method} seed {seed}] step {step + 1}/{args['steps']} loss {np.mean(losses[-every:]):.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    info.update(train_seconds=time.perf_counter() - start, final_loss=float(np.mean(losses[-20:])))
    return module, extractor, info


# ---------------------------------------------------------------- evaluation

def score_batch(features, masker, batch: Batch, image_method, set_name: str) -> list:
    """Each image scored at its own size, with its pixel numbers."""
    scorer = Scorer(masker, image_method=image_method)
    scored = scorer.score(batch, scorer.cluster(features), "image", set_name)
    for item in scored:
        scorer.measure(item)
    return scored



@torch.no_grad()
def score_model(module, extractor, method: str, batches: list[dict], maskers: dict, set_name: str) -> dict:
    """Per-image rows for every masker. Clusterers see the extractor's features; the baseline's
    ThresholdMasker its logits. The heterogeneity score (from the extractor's features, computed once
    with the first clusterer) is copied to every masker's rows."""
    module.eval()
    rows: dict[str, list[dict]] = defaultdict(list)
    for batch in batches:
        features = extractor(batch.image)
        first = None
        for name, masker in maskers.items():
            scored = score_batch(features, masker, batch, "heterogeneity" if first is None else None, set_name)
            if first is None:
                first = scored
            for s, f in zip(scored, first):
                s.result.image_score = f.result.image_score
                rows[name].append(s.result.row())
        if method == "ce":
            scored = score_batch(module.head(features), module.clusterer, batch, None, set_name)
            for s, f in zip(scored, first):
                s.result.image_score = f.result.image_score
                rows["threshold"].append(s.result.row())
    return rows


def balanced_accuracy(scores: list[float], forged: list[bool], threshold: float) -> float:
    s, y = np.asarray(scores), np.asarray(forged, bool)
    called = s > threshold
    return float((called[y].mean() + (~called[~y]).mean()) / 2)


def summarize_rows(rows: list[dict], thresholds: list[float], default_threshold: float) -> dict:
    """aggregate()'s numbers for one (model, masker) plus the extra image-level figures."""
    entry = aggregate(rows, default_threshold)[0]
    scores = [r["image_score"] for r in rows]
    forged = [not r["authentic"] for r in rows]
    entry["image_auc_forged_share"] = image_auc([r["forged_share"] for r in rows], forged)
    entry["image_acc_at"] = {f"{t:g}": float(aggregate(rows, t)[0]["image_acc"]) for t in thresholds}
    entry["balanced_acc_at"] = {f"{t:g}": balanced_accuracy(scores, forged, t) for t in thresholds}
    for kind, prefix in (("Sp_D_", "splice"), ("Sp_S_", "copy_move")):
        part = [r for r in rows if not r["authentic"] and r["name"].startswith(kind)]
        entry[f"f1_forged_{prefix}"] = float(np.mean([r["f1_forged"] for r in part])) if part else math.nan
        entry[f"f1_{prefix}"] = float(np.mean([r["f1"] for r in part])) if part else math.nan
    return entry


def run_task(task: dict) -> dict:
    """Train one (method, seed), score it on CASIA and on the synthetic validation set."""
    torch.set_num_threads(1)
    method, seed, args, files = task["method"], task["seed"], task["args"], task["files"]
    started = time.perf_counter()
    data = torch.load(files[f"train{seed}"]) if method != REFERENCE else {}
    module, extractor, info = train(method, seed, data, args)
    del data
    maskers = {"hdbscan": Clusterer("hdbscan", min_cluster_size=args["min_cluster_size"], grid=args["grid"]),
               "kmeans": Clusterer("kmeans", grid=args["grid"], seed=seed)}
    t0 = time.perf_counter()
    casia = score_model(module, extractor, method, casia_batches(args["casia"], args["eval_batch"]), maskers, SET_NAME)
    eval_seconds = time.perf_counter() - t0
    val = score_model(module, extractor, method, synthetic_batches(torch.load(files["val"]), 16),
                      {"hdbscan": maskers["hdbscan"]}, "synthetic")
    primary = "threshold" if method == "ce" else "hdbscan"
    out = {"method": method, "seed": seed, **info, "eval_seconds": eval_seconds,
           "primary": primary,
           "casia": {name: summarize_rows(r, args["thresholds"], args["image_threshold"]) for name, r in casia.items()},
           "synthetic_val": {name: {k: aggregate(r)[0][k] for k in ("f1", "f1_forged", "iou")}
                             for name, r in (("hdbscan", val["hdbscan"]),
                                             *((("threshold", val["threshold"]),) if method == "ce" else ()))},
           "per_image": {name: {"name": [r["name"] for r in rows], "authentic": [r["authentic"] for r in rows],
                                "f1": [_round(r["f1"]) for r in rows], "f1_forged": [_round(r["f1_forged"]) for r in rows],
                                "iou": [_round(r["iou"]) for r in rows],
                                "image_score": [_round(r["image_score"]) for r in rows],
                                "forged_share": [_round(r["forged_share"]) for r in rows]}
                         for name, rows in casia.items()},
           "seconds": time.perf_counter() - started}
    c = out["casia"][primary]
    print(f"done {method} seed {seed}: macro F1 {c['f1']:.3f}, forged F1 {c['f1_forged']:.3f}, "
          f"image AUC {c['image_auc']:.3f}, false alarms {c['false_alarm_rate']:.2f}, synthetic F1 "
          f"{out['synthetic_val'][primary]['f1']:.3f} (train {info['train_seconds']:.0f} s, eval {eval_seconds:.0f} s)",
          flush=True)
    return out


def _round(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 5)


# ---------------------------------------------------------------- summaries


def trivial_masks(root: str) -> dict[str, dict[str, float]]:
    """Macro F1, forged F1 and IoU of predicting nothing (an empty mask) and everything on every
    forged CASIA image: what a model that does nothing scores (macro F1 rewards an empty mask with
    half the pristine class's F1)."""
    from focal_pl.metrics import pixel_scores

    source = CASIA(root, include_authentic=False)
    out: dict[str, dict[str, list]] = {"empty mask": defaultdict(list), "full mask": defaultdict(list)}
    for i in range(len(source)):
        truth = torch.from_numpy(source[i][1].astype(bool))
        for name, guess in (("empty mask", torch.zeros_like(truth)), ("full mask", torch.ones_like(truth))):
            numbers = pixel_scores(guess, truth)
            for key in ("f1", "f1_forged", "iou"):
                out[name][key].append(float(numbers[key]))
    return {name: {k: float(np.mean(v)) for k, v in d.items()} for name, d in out.items()}




def stats(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.mean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def fmt(mean_std: tuple[float, float], digits: int = 3) -> str:
    mean, std = mean_std
    return "-" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def pick(runs: list[dict], method: str, masker: str | None = None) -> list[dict]:
    """The per-seed CASIA entries of one method with one masker (None: its primary masker)."""
    out = []
    for r in sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"]):
        name = masker or r["primary"]
        if name in r["casia"]:
            out.append(r["casia"][name])
    return out


GRID = np.round(np.arange(0.0, 1.0001, 0.0025), 4)  # heterogeneity (an NMI) lies in [0, 1]


def best_threshold(accs: list[float]) -> tuple[float, float, tuple[float, float], int]:
    """Over ``GRID``: the best accuracy, the widest contiguous run of grid thresholds reaching it and
    its middle; returns (threshold, accuracy, (low, high), number of separate best runs)."""
    accs = np.asarray(accs)
    best = accs.max()
    hit = np.isclose(accs, best)
    runs, i = [], 0
    while i < len(hit):
        if hit[i]:
            j = i
            while j + 1 < len(hit) and hit[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    i, j = max(runs, key=lambda r: r[1] - r[0])
    return float(GRID[(i + j) // 2]), float(best), (float(GRID[i]), float(GRID[j])), len(runs)


def threshold_study(runs: list[dict], method: str) -> dict:
    """Heterogeneity of one model on CASIA: quantiles, per-seed best threshold, the pooled best
    (highest mean balanced accuracy over seeds), the accuracy of every seed there, and
    leave-one-seed-out transfer of the threshold."""
    per_seed = {}
    for r in sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"]):
        images = r["per_image"][r["primary"]]
        per_seed[r["seed"]] = (images["image_score"], [not a for a in images["authentic"]])
    qs = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    curves = {seed: [balanced_accuracy(sc, y, t) for t in GRID] for seed, (sc, y) in per_seed.items()}
    out: dict = {"quantiles": qs, "grid_step": 0.0025, "per_seed": {}}
    for seed, (scores, forged) in per_seed.items():
        sc, y = np.asarray(scores), np.asarray(forged)
        t, acc, interval, pieces = best_threshold(curves[seed])
        out["per_seed"][seed] = {"authentic_q": np.quantile(sc[~y], qs).tolist(), "forged_q": np.quantile(sc[y], qs).tolist(),
                                 "auc": image_auc(list(sc), list(y)),
                                 "best_threshold": t, "best_balanced_acc": acc, "best_interval": interval,
                                 "best_runs": pieces}
    mean_curve = np.mean([curves[seed] for seed in per_seed], axis=0)
    t, acc, interval, pieces = best_threshold(mean_curve)
    out["pooled"] = {"best_threshold": t, "best_interval": interval, "best_runs": pieces, "mean_balanced_acc": acc,
                     "per_seed_acc_there": {seed: balanced_accuracy(*per_seed[seed], t) for seed in per_seed}}
    all_s = np.concatenate([np.asarray(sc) for sc, _ in per_seed.values()])
    all_y = np.concatenate([np.asarray(y) for _, y in per_seed.values()])
    out["pooled"]["authentic_q"] = np.quantile(all_s[~all_y], qs).tolist()
    out["pooled"]["forged_q"] = np.quantile(all_s[all_y], qs).tolist()
    transfer = {}
    for seed in per_seed:
        others = [curves[k] for k in per_seed if k != seed]
        if others:
            t_other = best_threshold(np.mean(others, axis=0))[0]
            transfer[seed] = {"threshold_from_others": t_other, "balanced_acc": balanced_accuracy(*per_seed[seed], t_other)}
    out["leave_one_seed_out"] = transfer
    return out


def verdict(a: tuple[float, float], b: tuple[float, float], higher_better: bool = True) -> str:
    diff = (a[0] - b[0]) * (1 if higher_better else -1)
    if math.isnan(diff):
        return "not measured"
    spread = a[1] + b[1]
    if diff > spread:
        return f"holds (difference {a[0] - b[0]:+.3f}, more than the seeds' spread {spread:.3f})"
    if diff > 0:
        return f"holds weakly (difference {a[0] - b[0]:+.3f}, within the seeds' spread {spread:.3f})"
    if -diff > spread:
        return f"does not hold (difference {a[0] - b[0]:+.3f}, beyond the seeds' spread {spread:.3f})"
    return f"does not hold (difference {a[0] - b[0]:+.3f}, within the seeds' spread {spread:.3f})"


def write_markdown(path: Path, runs: list[dict], meta: dict) -> None:
    args = meta["args"]
    methods = [m for m in [*args["methods"], REFERENCE] if any(r["method"] == m for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    label = {m: f"`{m}`" for m in methods}
    measures = [("f1", "macro F1 (forged images)"), ("f1_forged", "forged-class F1 (forged images)"),
                ("iou", "IoU (forged images)"), ("image_auc", "image AUC, heterogeneity score"),
                ("image_auc_forged_share", "image AUC, predicted forged share"),
                ("false_alarm_rate", "false-alarm rate (authentic images with any forged pixel)"),
                ("false_alarm_area", "false-alarm area (mean forged share on authentic images)")]
    describe = {**{m: d for m, (_, d) in METHODS.items()}, REFERENCE: "the same network, untrained (reference)"}

    def masker_of(m: str) -> str:
        return "ThresholdMasker 0.5" if m == "ce" else "HDBSCAN"

    lines = [
        "# Evidence on real forgeries, at CPU scale (CASIA v1 sample)",
        "",
        machine_line(meta["machine"]) + f" Wall time {meta['wall_seconds'] / 60:.1f} min "
        f"({args['workers']} worker processes, 1 torch thread each).",
        "",
        "## Settings",
        "",
        f"- Training: `ForensicCNN` (width {args['width']}, depth {args['depth']}, {args['out_dim']}-d features at "
        f"1/{args['stride']} resolution, reflect padding), from scratch; {args['steps']} steps of batch {args['batch']} "
        f"at {args['size']} px, Adam lr {args['lr']:g} cosine-annealed to {args['lr_end']:g}, random flips / rot90 "
        f"per batch; seeds {', '.join(map(str, seeds))} (the seed sets the initial weights, shared by every method, "
        "the batch order and the training data).",
        f"- Training data: {args['steps'] * args['batch'] // args['reuse']} synthetic forgeries per seed "
        f"(`SyntheticForgeries`, kinds {', '.join(args['kinds'])}, mixed sharp / blended boundaries, forged area 5-30%, "
        f"{args['source_size']} px composites with the global resize / blur / noise / JPEG post-processing, then "
        f"resized to {args['size']} px) made from the {meta['pool_photos']} real photos of `{args['pool']}`; "
        f"the same data for every method of a seed.",
        f"- Test: the CASIA v1 sample `{args['casia']}` via `CASIA(root, include_authentic=True)`: "
        f"{meta['casia_forged']} forged ({meta['casia_splice']} splices `Sp_D`, {meta['casia_copy_move']} "
        f"same-image splices / copy-moves `Sp_S`) and {meta['casia_authentic']} authentic images, 384 x 256 or "
        "256 x 384, each fed to the network at its own size (features 96 x 64) and scored at its own resolution "
        "(`score_batch(..., resolution='image')`, `aggregate`).",
        f"- Clustering: `Clusterer('hdbscan', min_cluster_size={args['min_cluster_size']:g}, grid={args['grid']})` "
        f"(the 96 x 64 map average-pooled to 64 x 43, as the paper clusters 64 x 64 maps; noise to the nearest "
        f"center, no single cluster = authentic) and `Clusterer('kmeans', grid={args['grid']})` (k = 2). The baseline's "
        f"masks come from its own `ThresholdMasker({args['ce_threshold']:g})` on its logits; its extractor's features "
        "are also clustered for the HDBSCAN / k-means comparison.",
        "- Image-level score: heterogeneity (`image_method='heterogeneity'`: NMI between k-means words of the "
        "unpooled features and 4 x 4 windows), from each model's extractor features (the baseline's too, before "
        "its head); also the AUC of the predicted forged share. Image accuracy: forged when the score exceeds the "
        f"threshold; the table at {args['image_threshold']:g} is `TestReport`'s current default.",
        "- In-domain check: macro F1 on "
        f"{args['val']} held-out synthetic forgeries (seed 10000) at {args['size']} px, same masker.",
        "- Every figure: mean ± std (population) over the seeds; per-seed values in the tables below and in the "
        "JSON, per-image scores in the JSON.",
        "",
        "## Main table (CASIA v1 sample; mean ± std over seeds)",
        "",
        "| method | masks by | macro F1 | forged F1 | IoU | image AUC (heterogeneity) | false alarms | "
        "false-alarm area | synthetic macro F1 | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        e = pick(runs, m)
        synth = stats([r["synthetic_val"][r["primary"]]["f1"] for r in runs if r["method"] == m])
        secs = stats([r["train_seconds"] for r in runs if r["method"] == m])
        lines.append(f"| {label[m]} | {masker_of(m)} | " + " | ".join(
            fmt(stats([x[k] for x in e])) for k in ("f1", "f1_forged", "iou", "image_auc", "false_alarm_rate",
                                                    "false_alarm_area")) + f" | {fmt(synth)} | {secs[0]:.0f} |")
    for name, t in meta.get("trivial", {}).items():
        lines.append(f"| *{name}* | - | {t['f1']:.3f} | {t['f1_forged']:.3f} | {t['iou']:.3f} | - | "
                     f"{0.0 if name == 'empty mask' else 1.0:.3f} | {0.0 if name == 'empty mask' else 1.0:.3f} | - | - |")
    lines += ["", "Methods: " + "; ".join(f"`{m}`: {describe[m]}" for m in methods) + "; *empty mask* / *full mask*: "
              "every pixel called pristine / forged (no model: what macro F1 gives for nothing; an empty mask scores "
              "half the pristine class's F1).", ""]

    lines += ["## Each measure per seed", ""]
    for key, title in measures:
        lines += [f"### {title}", "", "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for m in methods:
            e = {r["seed"]: r["casia"][r["primary"]][key] for r in runs if r["method"] == m}
            lines.append(f"| {label[m]} | " + " | ".join(_cell(e.get(s)) for s in seeds)
                         + f" | {fmt(stats(list(e.values())))} |")
        lines.append("")

    lines += ["### Forged-class F1 by forgery type (mean ± std)", "",
              "| method | splices `Sp_D` | same-image `Sp_S` |", "|---|---|---|"]
    for m in methods:
        e = pick(runs, m)
        lines.append(f"| {label[m]} | {fmt(stats([x['f1_forged_splice'] for x in e]))} | "
                     f"{fmt(stats([x['f1_forged_copy_move'] for x in e]))} |")
    lines.append("")

    thresholds = [f"{t:g}" for t in args["thresholds"]]
    lines += ["## Image-level accuracy of the heterogeneity score", "",
              f"Accuracy of 'forged if heterogeneity > t' over the {meta['casia_forged']} + {meta['casia_authentic']} "
              "images (balanced classes, so it equals balanced accuracy), mean ± std over seeds.", "",
              "| method | " + " | ".join(f"t = {t}" for t in thresholds) + " |", "|---|" + "---|" * len(thresholds)]
    for m in methods:
        e = pick(runs, m)
        lines.append(f"| {label[m]} | " + " | ".join(fmt(stats([x["image_acc_at"][t] for x in e])) for t in thresholds)
                     + " |")
    lines.append("")

    study = meta.get("threshold_study")
    if study:
        qs = study["quantiles"]
        head = " | ".join(f"q{int(q * 100)}" for q in qs)
        lines += [f"## Heterogeneity threshold (default model `{meta['default_method']}`)", "",
                  f"Quantiles of the heterogeneity score on CASIA ({'min' if qs[0] == 0 else ''} ... max):", "",
                  f"| seed | images | {head} |", "|---|---|" + "---|" * len(qs)]
        for seed, s in study["per_seed"].items():
            for kind in ("authentic", "forged"):
                lines.append(f"| {seed} | {kind} | " + " | ".join(f"{v:.3f}" for v in s[f"{kind}_q"]) + " |")
        for kind in ("authentic", "forged"):
            lines.append(f"| all | {kind} | " + " | ".join(f"{v:.3f}" for v in study["pooled"][f"{kind}_q"]) + " |")
        ref = meta.get("threshold_study_untrained")
        if ref:
            for kind in ("authentic", "forged"):
                lines.append(f"| all, untrained | {kind} | "
                             + " | ".join(f"{v:.3f}" for v in ref["pooled"][f"{kind}_q"]) + " |")
        lines += ["", "| seed | AUC | best balanced accuracy | at t in (widest run) | separate best runs | "
                  "threshold chosen on the other seeds | balanced accuracy with it |",
                  "|---|---|---|---|---|---|---|"]
        for seed, s in study["per_seed"].items():
            lo = study["leave_one_seed_out"].get(seed, {})
            lines.append(f"| {seed} | {s['auc']:.3f} | {s['best_balanced_acc']:.3f} | {s['best_interval'][0]:.4f} - "
                         f"{s['best_interval'][1]:.4f} | {s['best_runs']} | "
                         f"{_cell(lo.get('threshold_from_others'))} | {_cell(lo.get('balanced_acc'))} |")
        p = study["pooled"]
        there = ", ".join(f"seed {k}: {v:.3f}" for k, v in p["per_seed_acc_there"].items())
        lines += ["", f"Pooled over seeds (thresholds on a grid of step {study['grid_step']}): the best mean balanced "
                  f"accuracy, {p['mean_balanced_acc']:.3f}, is reached for t in {p['best_interval'][0]:.4f} - "
                  f"{p['best_interval'][1]:.4f} (widest of {p['best_runs']} separate runs; middle {p['best_threshold']:.4f}; "
                  f"per seed there: {there}). The thresholds are chosen on the same 72 images they are scored on "
                  "(except the leave-one-seed-out column): optimistic.", ""]

    lines += ["## HDBSCAN against k-means (paper Table VIII)", "",
              "Both cluster the same features of each trained model (the baseline: its extractor's features). "
              "False alarms: share of the authentic images with any pixel called forged; area: mean forged share "
              "on them. F1 on the forged images.", "",
              "| method | HDBSCAN false alarms | k-means false alarms | HDBSCAN FA area | k-means FA area | "
              "HDBSCAN forged F1 | k-means forged F1 | HDBSCAN macro F1 | k-means macro F1 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        h, k = pick(runs, m, "hdbscan"), pick(runs, m, "kmeans")
        lines.append(f"| {label[m]} | " + " | ".join(fmt(stats([x[key] for x in e])) for key, e in (
            ("false_alarm_rate", h), ("false_alarm_rate", k), ("false_alarm_area", h), ("false_alarm_area", k),
            ("f1_forged", h), ("f1_forged", k), ("f1", h), ("f1", k))) + " |")
    lines.append("")

    lines += ["## What the numbers say about the paper's claims", "", "### Reading", ""]
    lines += reading(runs, meta)
    lines += ["", "### Claim by claim (verdicts from the means and the seeds' spread)", ""]
    lines += meta.get("conclusions", [])
    lines += ["", "## Limits", "",
              f"- A tiny model ({meta['parameters']:,} parameters, 1/{args['stride']} resolution) trained for "
              f"{args['steps']} steps of {args['batch']} images ({args['steps'] * args['batch']} images seen) on 2 "
              "shared CPU cores; the paper trains a 308M-parameter ViT on ~800K real forgeries for ~38 h on 4 A100s. "
              "The ranking of losses at this budget need not be the ranking at full scale.",
              f"- Trained only on synthetic forgeries ({', '.join(args['kinds'])}) from "
              f"{meta['pool_photos']} photos: the CASIA images are out of domain for every model alike.",
              f"- The test set is {meta['casia_forged']} forged + {meta['casia_authentic']} authentic images: one "
              "image moves a false-alarm rate by 1/36 = 0.028 and an AUC by up to ~0.03; the thresholds and quantiles "
              "are measured on the same images they would be chosen for.",
              f"- {len(seeds)} seeds only; the ± is the spread over seeds, not a confidence interval.",
              f"- HDBSCAN's min_cluster_size ({args['min_cluster_size']:g} of the map) is larger than about a "
              "quarter of the CASIA forged regions (median forged area 6.6%, lower quartile 3.5%).",
              ""]
    path.write_text("\n".join(lines) + "\n")


def _cell(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if lo == hi else f"{lo:.2f} - {hi:.2f}"


def reading(runs: list[dict], meta: dict) -> list[str]:
    """The overall reading, each sentence conditional on the numbers."""
    def s(method, key, masker=None):
        return stats([x[key] for x in pick(runs, method, masker)])

    have = [m for m in (*METHODS, REFERENCE) if any(r["method"] == m for r in runs)]
    contrastive = [m for m in CONTRASTIVE if m in have]
    trivial = meta.get("trivial", {})
    out = []
    if contrastive and trivial:
        best = max(contrastive, key=lambda m: s(m, "f1_forged")[0])
        full = trivial["full mask"]
        synth = {m: stats([r["synthetic_val"][r["primary"]]["f1"] for r in runs if r["method"] == m]) for m in have}
        out.append("- In domain (held-out synthetic splices, macro F1 with the same masks): "
                   + ", ".join(f"`{m}` {synth[m][0]:.3f}" for m in have) + ".")
        if s(best, "f1_forged")[0] <= full["f1_forged"] + 0.02:
            out.append(f"- On CASIA no loss localizes better than calling every pixel forged: the best forged F1, "
                       f"`{best}` {fmt(s(best, 'f1_forged'))}, against {full['f1_forged']:.3f} for a full mask (IoU "
                       f"{s(best, 'iou')[0]:.3f} against {full['iou']:.3f}).")
        else:
            out.append(f"- On CASIA the best loss, `{best}`, localizes better than a full mask: forged F1 "
                       f"{fmt(s(best, 'f1_forged'))} against {full['f1_forged']:.3f}.")
    pairs = [(a, b) for i, a in enumerate(contrastive) for b in contrastive[i + 1:]]
    beyond = [f"`{a}` vs `{b}` on {k} ({s(a, k)[0] - s(b, k)[0]:+.3f}, spread {s(a, k)[1] + s(b, k)[1]:.3f})"
              for a, b in pairs for k in ("f1", "f1_forged") if abs(s(a, k)[0] - s(b, k)[0]) > s(a, k)[1] + s(b, k)[1]]
    if pairs and not beyond:
        out.append("- Every difference between the contrastive losses (macro F1, forged F1) is within the seeds' "
                   "spread, so this run cannot rank them: neither the paper's 'soft SCL beats NCE' nor its "
                   "contrary is shown at this scale.")
    elif pairs:
        out.append(f"- Of the {2 * len(pairs)} differences between contrastive losses (macro F1, forged F1), these exceed "
                   f"the sum of the two seed spreads: {'; '.join(beyond)}; with 3 seeds and 36 forged images that is "
                   "weak evidence, and the rest are within the spread.")
    if "ce" in have and trivial:
        share = stats([x["false_alarm_area"] for x in pick(runs, "ce")])
        if s("ce", "f1_forged")[0] < 0.02:
            out.append(f"- The cross-entropy baseline's threshold masks are (nearly) empty on CASIA (forged F1 "
                       f"{s('ce', 'f1_forged')[0]:.3f}, false-alarm area {share[0]:.3f}): its macro F1 "
                       f"{s('ce', 'f1')[0]:.3f} is the empty mask's {trivial['empty mask']['f1']:.3f}, so macro F1 "
                       "ranks it first for finding nothing.")
    aucs = {m: s(m, "image_auc")[0] for m in have}
    study = meta.get("threshold_study")
    if aucs and all(abs(a - 0.5) < 0.05 for a in aucs.values()) and study:
        ref = meta.get("threshold_study_untrained")
        lo = study["leave_one_seed_out"]
        lowest_score = min(study["pooled"]["authentic_q"][0], study["pooled"]["forged_q"][0])
        out.append(
            f"- The heterogeneity score does not separate forged from authentic CASIA images: AUC "
            f"{min(aucs.values()):.3f} - {max(aucs.values()):.3f} over all models"
            + (", the untrained one included. Its value follows image content: the untrained network already scores "
               f"authentic images {ref['pooled']['authentic_q'][1]:.3f} - {ref['pooled']['authentic_q'][5]:.3f} "
               "(10th - 90th percentile). " if ref else ". ")
            + (f"The current default threshold {meta['args']['image_threshold']:g} lies below every CASIA image's score "
               f"(lowest with `{meta['default_method']}`: {lowest_score:.3f}), so it calls every image forged "
               "(accuracy 0.5). " if lowest_score > meta["args"]["image_threshold"] else
               f"At the current default threshold {meta['args']['image_threshold']:g} the accuracy is "
               f"{s(meta['default_method'], 'image_acc')[0]:.3f}. ")
            + f"The best threshold found here ({study['pooled']['best_threshold']:.4f}, "
            f"balanced accuracy {study['pooled']['mean_balanced_acc']:.3f}) is noise: per seed the best one moves "
            + ", ".join(f"{v['best_threshold']:.3f}" for v in study["per_seed"].values())
            + (", and chosen on the other seeds it scores " + ", ".join(f"{v['balanced_acc']:.3f}" for v in lo.values())
               if lo else "")
            + ". These numbers give no basis for a default beyond a false-alarm target on authentic images: "
            f"with `{meta['default_method']}`, 'forged above {study['pooled']['authentic_q'][5]:.3f}' would call 10% of "
            "these authentic images forged.")
    km = {m: s(m, "false_alarm_rate", "kmeans")[0] for m in have}
    hd = {m: s(m, "false_alarm_rate", "hdbscan")[0] for m in have}
    if km and hd:
        lowest = min(hd, key=hd.get)
        out.append(
            f"- k-means flags {_span(km.values())} of the authentic images for every model "
            f"(k = 2 always splits an image in two); HDBSCAN flags fewer, {_span(hd.values())}: the paper's structural point (Table VIII) holds, but with these features HDBSCAN "
            f"still finds two clusters in most authentic images. The fewest HDBSCAN false alarms are the "
            f"{'untrained network' if lowest == REFERENCE else f'`{lowest}` model'}'s ({hd[lowest]:.2f})"
            + (": training on synthetic splices made authentic images' features less homogeneous, not more."
               if lowest == REFERENCE else ".")
            + (" On forged images HDBSCAN's forged F1 is above k-means' for every model."
               if all(s(m, "f1_forged", "hdbscan")[0] > s(m, "f1_forged", "kmeans")[0] for m in have)
               else " On forged images HDBSCAN's forged F1 is not consistently above k-means' (per method below)."))
    return out


def conclusions(runs: list[dict], meta: dict) -> list[str]:
    """Sentences read off the numbers (each states whether the claim holds at this scale)."""
    out = []

    def s(method, key, masker=None):
        return stats([x[key] for x in pick(runs, method, masker)])

    have = [m for m in (*METHODS, REFERENCE) if any(r["method"] == m for r in runs)]
    default = meta["default_method"]
    for key, title in (("f1", "macro F1"), ("f1_forged", "forged-class F1")):
        ranked = sorted(have, key=lambda m: -s(m, key)[0])
        out.append(f"- Ranking by CASIA {title} (each method with its own masks): "
                   + " > ".join(f"`{m}` {s(m, key)[0]:.3f}" for m in ranked) + ".")
    for key, title in (("f1", "macro F1"), ("f1_forged", "forged-class F1")):
        for other in ("nce", "ce", "scl_hard", "scl_fcm"):
            if default in have and other in have and other != default:
                out.append(f"- `{default}` beats `{other}` on CASIA {title}: "
                           f"{verdict(s(default, key), s(other, key))}.")
    for other in ("nce", "ce"):
        if default in have and other in have and other != default:
            out.append(f"- `{default}` beats `{other}` on image AUC (heterogeneity): "
                       f"{verdict(s(default, 'image_auc'), s(other, 'image_auc'))}.")
    if REFERENCE in have and default in have:
        synth = {m: stats([r["synthetic_val"][r["primary"]]["f1"] for r in runs if r["method"] == m])
                 for m in (default, REFERENCE)}
        out.append(f"- Training against the untrained network (`{default}`): on held-out synthetic forgeries macro F1 "
                   f"{fmt(synth[default])} against {fmt(synth[REFERENCE])}; on CASIA, 'trained beats untrained' on "
                   f"macro F1: {verdict(s(default, 'f1'), s(REFERENCE, 'f1'))}; on forged F1: "
                   f"{verdict(s(default, 'f1_forged'), s(REFERENCE, 'f1_forged'))}; on image AUC: "
                   f"{verdict(s(default, 'image_auc'), s(REFERENCE, 'image_auc'))}.")
    trivial = meta.get("trivial", {}).get("empty mask")
    if trivial:
        out.append(f"- An empty mask scores macro F1 {trivial['f1']:.3f} on these forged images (forged F1 0): every "
                   "method whose macro F1 is near that value finds little; forged-class F1 and IoU are the "
                   "measures that separate them here.")
    study = meta.get("threshold_study")
    if study:
        pooled, auc = study["pooled"], s(default, "image_auc")
        at = s(default, "image_acc")
        out.append(
            f"- Heterogeneity on CASIA (`{default}`): AUC {fmt(auc)}. Authentic images score "
            f"{pooled['authentic_q'][1]:.3f} - {pooled['authentic_q'][5]:.3f} (10th - 90th percentile, all seeds), "
            f"forged ones {pooled['forged_q'][1]:.3f} - {pooled['forged_q'][5]:.3f}; at the current default threshold "
            f"{meta['args']['image_threshold']:g} the accuracy is {fmt(at)}. The best pooled threshold is "
            f"{pooled['best_threshold']:.4f} (mean balanced accuracy {pooled['mean_balanced_acc']:.3f}, chosen on the "
            "scored images).")
    for m in [m for m in (*CONTRASTIVE, "ce", REFERENCE) if m in have]:
        h, k = s(m, "false_alarm_rate", "hdbscan"), s(m, "false_alarm_rate", "kmeans")
        fh, fk = s(m, "f1_forged", "hdbscan"), s(m, "f1_forged", "kmeans")
        out.append(f"- HDBSCAN has fewer false alarms than k-means (`{m}`): {fmt(h, 2)} against {fmt(k, 2)} of the "
                   f"authentic images ({verdict(h, k, higher_better=False)}); forged F1 {fmt(fh)} against {fmt(fk)} "
                   f"({verdict(fh, fk)}).")
    return out


def share_names(runs: list[dict], meta: dict) -> None:
    """Keep the CASIA image names once (``meta['casia_images']``, the order of every per-image list)."""
    for run in runs:
        for images in run["per_image"].values():
            names = images.pop("name", None)
            if names is not None:
                if meta.setdefault("casia_images", names) != names:
                    raise RuntimeError("per-image lists in different orders")


def to_json(data: dict) -> str:
    """Indented JSON, NaN as null, each list of plain values (the per-image scores) on one line."""
    def clean(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    text = json.dumps(clean(data), indent=1, default=str)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default=str(SHARED / "pristine"), help="folder of pristine photos")
    parser.add_argument("--casia", default=str(SHARED / "real" / "CASIA1_samples"), help="CASIA v1 root")
    parser.add_argument("--kinds", nargs="+", default=["splice"], choices=["splice", "copy_move", "inpaint"])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="training side in px")
    parser.add_argument("--source-size", type=int, default=96, help="side of the generated composites")
    parser.add_argument("--reuse", type=int, default=2, help="each training image is seen about this often")
    parser.add_argument("--val", type=int, default=48, help="held-out synthetic images (in-domain check)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-end", type=float, default=1e-4, help="cosine annealing ends here")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--out-dim", type=int, default=64)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--no-untrained", action="store_true", help="skip the untrained reference")
    parser.add_argument("--min-cluster-size", type=float, default=0.05, help="HDBSCAN's, a fraction of the map")
    parser.add_argument("--grid", type=int, default=64, help="clustering grid (longer side)")
    parser.add_argument("--ce-threshold", type=float, default=0.5)
    parser.add_argument("--image-threshold", type=float, default=0.05, help="heterogeneity threshold of image_acc")
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    parser.add_argument("--eval-batch", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="real_forgeries")
    parser.add_argument("--from-json", default=None, help="only rewrite the .md of a saved .json (no training)")
    args = vars(parser.parse_args())
    if args["from_json"]:
        saved = json.loads(Path(args["from_json"]).read_text())
        runs, meta = saved.pop("runs"), saved
        meta.setdefault("trivial", trivial_masks(meta["args"]["casia"]))
        meta["threshold_study"] = threshold_study(runs, meta["default_method"])
        meta["threshold_study_untrained"] = (threshold_study(runs, REFERENCE)
                                             if any(r["method"] == REFERENCE for r in runs) else None)
        meta["conclusions"] = conclusions(runs, meta)
        share_names(runs, meta)
        Path(args["from_json"]).write_text(to_json({**meta, "runs": runs}))
        write_markdown(Path(args["from_json"]).with_suffix(".md"), runs, meta)
        print(Path(args["from_json"]).with_suffix(".md").read_text())
        return
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="real_forgeries_"))
    costs = {"nce": 4, "scl_fcm": 3, "scl": 3, "scl_hard": 3, "ce": 2, REFERENCE: 0}
    methods = args["methods"] + ([] if args["no_untrained"] else [REFERENCE])
    try:
        with mp.get_context("spawn").Pool(args["workers"]) as pool:
            print(f"making {len(args['seeds'])} x {args['steps'] * args['batch'] // args['reuse']} training and "
                  f"{args['val']} validation forgeries from {args['pool']} ...", flush=True)
            files = build_sets(pool, args, folder)
            print(f"data ready ({time.perf_counter() - started:.0f} s)", flush=True)
            tasks = [{"method": m, "seed": s, "args": args, "files": files} for s in args["seeds"] for m in methods]
            tasks.sort(key=lambda t: -costs[t["method"]])
            runs = []
            for run in pool.imap_unordered(run_task, tasks):
                runs.append(run)
                print(f"[{len(runs)}/{len(tasks)}] {time.perf_counter() - started:.0f} s elapsed", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    runs.sort(key=lambda r: (methods.index(r["method"]), r["seed"]))
    source = CASIA(args["casia"], include_authentic=True)
    names = [Path(e.image).stem for e in source.entries]
    forged = [n for n, e in zip(names, source.entries) if e.mask is not None]
    default = "scl" if "scl" in args["methods"] else args["methods"][0]
    meta = {"machine": machine(), "args": args, "default_method": default,
            "pool_photos": len(PhotoPool(args["pool"])), "casia_forged": len(forged),
            "casia_authentic": len(names) - len(forged),
            "casia_splice": sum(n.startswith("Sp_D_") for n in forged),
            "casia_copy_move": sum(n.startswith("Sp_S_") for n in forged),
            "parameters": sum(p.numel() for p in build_model("scl", 0, args)[0].parameters()),
            "trivial": trivial_masks(args["casia"])}
    meta["threshold_study"] = threshold_study(runs, default) if any(r["method"] == default for r in runs) else None
    meta["threshold_study_untrained"] = (threshold_study(runs, REFERENCE) if any(r["method"] == REFERENCE for r in runs)
                                         else None)
    meta["conclusions"] = conclusions(runs, meta)
    meta["wall_seconds"] = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    share_names(runs, meta)
    (RESULTS / f"{args['out']}.json").write_text(to_json({**meta, "runs": runs}))
    write_markdown(RESULTS / f"{args['out']}.md", runs, meta)
    print((RESULTS / f"{args['out']}.md").read_text())


if __name__ == "__main__":
    main()
