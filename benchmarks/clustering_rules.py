"""Which HDBSCAN labelling rule? Forged F1 and false alarms of every (noise rule x allow_single_cluster)
pair and k-means, on synthetic FOCAL-like maps (and, with ``--checkpoint``, a trained model's features).

    python benchmarks/clustering_rules.py [--checkpoint runs/demo/version_0/checkpoints/last.ckpt]
"""

from __future__ import annotations

import numpy as np
import torch

from focal_pl.clustering import Clusterer
from focal_pl.evaluation.masks import resize_mask
from focal_pl.evaluation.metrics import pixel_scores

from common import parser, show, table, write_result

RULES = [(noise, single) for single in (False, True) for noise in ("nearest", "forged", "pristine")]


def synthetic_maps(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(features 256 x 64 x 64, truth 64 x 64) pairs: half forged (1-2 regions), half authentic."""
    g = np.random.default_rng(seed)
    maps = []
    for i in range(count):
        pristine = g.normal(size=256)
        spread = g.uniform(0.3, 0.45)
        features = pristine[:, None, None] + spread * g.normal(size=(256, 64, 64))
        truth = np.zeros((64, 64), bool)
        for _ in range(g.integers(1, 3) if i % 2 == 0 else 0):
            h, w = g.integers(12, 28, 2)
            y, x = g.integers(0, 64 - h), g.integers(0, 64 - w)
            region = np.zeros((64, 64), bool)
            region[y : y + h, x : x + w] = True
            region &= ~truth
            features[:, region] = g.normal(size=256)[:, None] + spread * g.normal(size=(256, int(region.sum())))
            truth |= region
        stray = g.random((64, 64)) < 0.01
        features[:, stray] = 2.5 * g.normal(size=(256, int(stray.sum())))
        maps.append((torch.from_numpy(features).float(), torch.from_numpy(truth)))
    return maps


def model_maps(checkpoint: str, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A trained model's features of synthetic splices (even items) and authentic images (odd)."""
    from focal_pl.data import SyntheticForgeries
    from focal_pl.data.transforms import image_to_tensor, resize_pair
    from focal_pl.module import FocalModule

    module = FocalModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    forged = SyntheticForgeries(count, 160, kinds=["splice"], seed=seed)
    authentic = SyntheticForgeries(count, 160, authentic_fraction=1.0, seed=seed + 1)
    maps = []
    for i in range(count):
        image, mask, _ = (forged if i % 2 == 0 else authentic)[i]
        with torch.no_grad():
            features = module.extractor(image_to_tensor(resize_pair(image, mask, 128)[0])[None])[0]
        maps.append((features, torch.from_numpy(mask.astype(bool))))
    return maps


def evaluate(maps, clusterer: Clusterer) -> dict[str, float]:
    """Forged F1 over the forged maps; false-alarm rate and area over the authentic ones."""
    f1, alarms, area = [], [], []
    for features, truth in maps:
        mask = resize_mask(clusterer(features)[0], tuple(truth.shape))
        if truth.any():
            f1.append(float(pixel_scores(mask, truth)["f1_forged"]))
        else:
            alarms.append(float(mask.any()))
            area.append(float(mask.float().mean()))
    return {"forged_f1": float(np.mean(f1)), "false_alarm_rate": float(np.mean(alarms)),
            "false_alarm_area": float(np.mean(area)), "forged_images": len(f1), "authentic_images": len(alarms)}


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--checkpoint", help="also a trained model's features (a Lightning checkpoint)")
    options.add_argument("--maps", type=int, default=40, help="maps of each input, half of them forged")
    args = options.parse_args()
    torch.set_num_threads(2)
    inputs = {"synthetic FOCAL-like maps (64 x 64 x 256, min cluster 200)": (synthetic_maps(args.maps, 0), 200)}
    if args.checkpoint:
        inputs["demo model features of synthetic images (32 x 32, min cluster 5%)"] = (
            model_maps(args.checkpoint, args.maps, 500), 0.05)
    rows, lines = [], []
    for label, (maps, size) in inputs.items():
        clusterers = {f"noise={noise}, allow_single_cluster={single}": Clusterer(
            min_cluster_size=size, noise=noise, allow_single_cluster=single) for noise, single in RULES}
        for rule, clusterer in {**clusterers, "k-means (k = 2), for reference": Clusterer("kmeans")}.items():
            rows.append(show({"input": label, "rule": rule, **evaluate(maps, clusterer)}))
        lines += [f"{label}:", "", *table(["rule", "forged F1", "false-alarm rate", "false-alarm area"], (
            (r["rule"], *(f"{r[k]:.3f}" for k in ("forged_f1", "false_alarm_rate", "false_alarm_area")))
            for r in rows if r["input"] == label)), ""]
    write_result("clustering_rules", {"maps": args.maps, "checkpoint": args.checkpoint, "rows": rows}, lines)


if __name__ == "__main__":
    main()
