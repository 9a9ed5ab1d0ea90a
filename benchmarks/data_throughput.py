"""Decode + augment throughput per loader worker at 1024 x 1024, from a folder and from shards.

    python benchmarks/data_throughput.py [--images 48] [--pool ../shared/data/pristine]

One process (= one DataLoader worker) reads every item: JPEG photos resized to 1024 x 1024 with a
forged-region mask, stored as files (``FolderPairs``) and as shards of the same bytes, read as
training reads them (``ShardFolder``: each chunk's sha256 verified when first opened).
Writes benchmarks/results/data_throughput.json (settings, machine, figures) and prints the table;
the prose is in benchmarks/results/data_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from focal_pl.data.datamodule import ForgeryDataset
from focal_pl.data.shards import ShardFolder, StreamItem, write_shards
from focal_pl.data.sources import FolderPairs
from focal_pl.data.synthetic import PhotoPool, random_region
from focal_pl.data.transforms import Augmentations
from focal_pl.training.provenance import machine, machine_line

RESULTS = Path(__file__).parent / "results"


def make_folder(root: Path, count: int, pool: str | None) -> FolderPairs:
    photos = PhotoPool(pool, max_side=2048)
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(count):
        photo = Image.fromarray(photos[i % len(photos)]).resize((1024, 1024), Image.BICUBIC)
        photo.save(root / "images" / f"{i:04d}.jpg", quality=92)
        Image.fromarray(random_region(rng, 1024, (0.05, 0.3)) * 255).save(root / "masks" / f"{i:04d}.png")
    return FolderPairs(str(root / "images"))


def rate(fn, count: int, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--pool", default=None, help="folder of photos (default: scikit-image's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_folder(root / "folder", args.images, args.pool)
        write_shards([source], root / "shards", progress=False)
        shards = ShardFolder(root / "shards")
        augment = Augmentations(pad_to=1024)
        plain = ForgeryDataset([source], 1024)
        augmented = ForgeryDataset([source], 1024, augment=augment)
        from_shards, from_shards_aug = StreamItem(1024), StreamItem(1024, augment)
        torch.manual_seed(0)
        figures = {
            "folder, decode + resize": rate(lambda i: plain[i], args.images),
            "folder, decode + augment + resize": rate(lambda i: augmented[i], args.images),
            "shards, decode + resize": rate(lambda i: from_shards(shards.read(i)), args.images),
            "shards, decode + augment + resize": rate(lambda i: from_shards_aug(shards.read(i)), args.images),
        }
    info = machine()
    (RESULTS / "data_throughput.json").write_text(json.dumps({"machine": info, "images": args.images, "pool": args.pool,
                                                              "images_per_second_per_worker": figures}, indent=1))
    print("\n".join([machine_line(info), "", "| path | images / s / worker |", "|---|---|",
                     *(f"| {name} | {value:.1f} |" for name, value in figures.items())]))


if __name__ == "__main__":
    main()
