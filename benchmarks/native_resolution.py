"""What native-resolution inference is for: squashed against native on full-size splices, and the memory
of a ``--megapixels`` photo in a fresh process; the model is ``--weights`` or the CPU demo trained here.

    python benchmarks/native_resolution.py [--images 12] [--seed 0] [--weights NAME.pt] [--train-images 9600]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import focal_pl
from focal_pl.clustering.core import pooled_size
from focal_pl.data.synthetic import composite, jpeg, local_history, random_crop, random_region
from focal_pl.evaluation.metrics import pixel_scores
from focal_pl.release import as_rgb_array

from common import RESULTS, SHARED, child_json, parser, status_bytes, table, timed, write_result


def splice(rng: np.random.Generator, host: np.ndarray, donor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``host`` with a region of ``donor`` pasted at full size -> (image, bool truth of the image's size)."""
    h, w = host.shape[:2]
    side = min(h, w)
    patch = local_history(rng, random_crop(rng, donor, side))  # its own resampling, noise, JPEG or blur
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    region, content = np.zeros((h, w), np.uint8), host.copy()
    region[y:y + side, x:x + side] = random_region(rng, side, (0.08, 0.3))
    content[y:y + side, x:x + side] = patch
    image, mask = composite(host, content, region, 3.0 if rng.random() < 0.5 else 0.0)
    image = jpeg(image, int(rng.integers(85, 100)))  # saved as a photo is; no resize: the size stays full
    return np.ascontiguousarray(image), mask.astype(bool)


def model(args: argparse.Namespace) -> tuple[Path, focal_pl.release.ReleasedModel, dict]:
    """The release file (``--weights``, else the CPU demo trained and exported here), the model, its caps."""
    weights = args.weights
    if weights is None:
        cli, runs, weights = [sys.executable, "-m", "focal_pl"], args.work / "runs", args.work / "demo.pt"
        subprocess.run([*cli, "fit", "--config", "demo.yaml", "--budget.images", str(args.train_images),
                        "--budget.validate_every", str(min(args.train_images, 2400)), "--run.name", "demo",
                        "--run.version", "native", "--trainer.logger.init_args.save_dir", str(runs)], check=True)
        subprocess.run([*cli, "export", str(runs / "demo" / "native"), "--out", str(weights)], check=True)
    loaded = focal_pl.load(weights)
    clusterer = loaded.module.clusterer
    if args.grid is not None:
        clusterer.grid = args.grid
    return weights, loaded, {"clusterer": repr(clusterer), "max_points": clusterer.max_points, "grid": clusterer.grid}


def localize(loaded, image: np.ndarray, native: bool) -> tuple[torch.Tensor, float]:
    """The mask of one ``localize`` call (a tensor) and its wall seconds."""
    seconds, _, found = timed(lambda: loaded.localize(image, native=native))
    return torch.from_numpy(found.mask), seconds


def memory_child(args: argparse.Namespace) -> dict:
    """Native inference on one upscaled photo, in this (fresh) process: peak RSS before and after, MiB."""
    _, loaded, setting = model(args)
    width = int(round(math.sqrt(args.megapixels * 1e6 * 1.5)))
    height = int(round(width / 1.5))  # 3:2
    photo = as_rgb_array(args.pool / "lomiri-wallpapers" / "sunset_by_Aitzol_Berasategi.jpg")
    loaded.localize(photo[:512, :768], native=True)  # the first call's imports, outside the measure
    image = cv2.resize(photo, (width, height), interpolation=cv2.INTER_CUBIC)
    before, peak_before = status_bytes("VmRSS") / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mask, seconds = localize(loaded, image, native=True)
    stride, clusterer = int(loaded.module.extractor.stride), loaded.module.clusterer
    cells = [math.ceil(height / stride), math.ceil(width / stride)]
    return {"size": [height, width], "megapixels": height * width / 1e6, "seconds": seconds, "feature_map": cells,
            "clustered_map": list(pooled_size(*cells, clusterer.grid, clusterer.max_points)), "mask": list(mask.shape),
            "rss_mib_before": before, "peak_rss_mib_before": peak_before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "method": "peak: resource.getrusage ru_maxrss (= VmHWM); before: VmRSS of /proc/self/status", **setting}


def images_table(report: dict) -> str:
    """Per image and on average: macro F1, forged F1 and IoU, and seconds, squashed and native."""
    def cells(r: dict) -> list[str]:
        return [" / ".join(f"{r[m][k]:.3f}" for k in ("f1", "f1_forged", "iou")) for m in ("squashed", "native")] + [
            f"{r[m]['seconds']:.2f}" for m in ("squashed", "native")]

    rows = report["images"]
    mean = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in ("f1", "f1_forged", "iou", "seconds")}
            for m in ("squashed", "native")}
    return "\n".join(table(["image", "size", "squashed F1 / forged F1 / IoU", "native F1 / forged F1 / IoU",
                            "squashed s", "native s"],
                           [*([r["name"], f"{r['size'][1]} x {r['size'][0]}", *cells(r)] for r in rows),
                            [f"**mean** ({len(rows)})", "", *cells(mean)]]))


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--images", type=int, default=12, help="full-size splices to localize both ways")
    options.add_argument("--seed", type=int, default=0, help="of the splices")
    options.add_argument("--weights", type=Path, help="a release file (focal-pl export); default: train the demo")
    options.add_argument("--train-images", type=int, default=9600, help="the demo's budget.images when training")
    options.add_argument("--work", type=Path, default=Path("/tmp/focal-pl-native"), help="scratch folder")
    options.add_argument("--pool", type=Path, default=SHARED / "pristine", help="the photos (with MANIFEST.tsv)")
    options.add_argument("--grid", type=int, help="also cap the clustered side (the clusterer's grid)")
    options.add_argument("--megapixels", type=float, default=24.0, help="size of the photo of the memory figure")
    options.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)  # the memory child process
    options.add_argument("--table", action="store_true", help="print the table of the saved json and stop")
    args = options.parse_args()
    if args.child_memory or args.table:
        print(json.dumps(memory_child(args)) if args.child_memory else
              images_table(json.loads((RESULTS / "native_resolution.json").read_text())))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    weights, loaded, setting = model(args)
    # the pool's photos (MANIFEST.tsv: path, WxH, bytes) with a long side of at least 1800 px
    listed = [line.split("\t") for line in (args.pool / "MANIFEST.tsv").read_text().splitlines()[1:] if line.strip()]
    photos = [args.pool / path for path, size, _ in listed if max(map(int, size.split("x"))) >= 1800]
    rng, rows, first = np.random.default_rng(args.seed), [], {}
    for index in range(args.images):
        host, donor = rng.choice(len(photos), 2, replace=False)
        image, truth = splice(rng, as_rgb_array(photos[host]), as_rgb_array(photos[donor]))
        row = {"name": f"{index:02d} {photos[host].stem[:18]} + {photos[donor].stem[:12]}",
               "size": list(image.shape[:2]), "forged_share": float(truth.mean())}
        for mode in ("squashed", "native"):
            if mode not in first:  # one untimed call per mode: it pays the imports
                first[mode] = localize(loaded, image, mode == "native")[1]
            mask, seconds = localize(loaded, image, mode == "native")
            assert mask.shape == truth.shape, (mode, mask.shape, truth.shape)
            scores = pixel_scores(mask, torch.from_numpy(truth))
            row[mode] = {**{k: float(scores[k]) for k in ("f1", "f1_forged", "iou")}, "seconds": seconds}
        rows.append(row)
    memory = child_json(__file__, "--child-memory", "--weights", str(weights), "--pool", str(args.pool),
                        "--megapixels", str(args.megapixels), *(["--grid", str(args.grid)] if args.grid else []))
    report = {"command": "python " + " ".join(sys.argv), "weights": str(weights), "seed": args.seed, **setting,
              "model_validation": (loaded.figures.get("validation") or {}).get("best"), "first_call_seconds": first,
              "load_average": os.getloadavg(), "images": rows, "memory": memory,
              "total_seconds": time.perf_counter() - started}
    write_result("native_resolution", report, [images_table(report), "", json.dumps(report["memory"], indent=1)])


if __name__ == "__main__":
    main()
