"""Decode + augment throughput per loader worker at 1024 x 1024, from a folder and from shards.

    python benchmarks/data_throughput.py [--images 48] [--pool ../shared/data/pristine]

One process (= one DataLoader worker) reads every item: JPEG photos resized to 1024 x 1024 with a
forged-region mask, stored as files (``FolderPairs``) and as shards of the same bytes, read as
training reads them (``ShardFolder``: each chunk's sha256 verified when first opened); best of 2 passes.
Writes benchmarks/results/data_throughput.json and prints the table; the page is hand-written.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from focal_pl.data.datamodule import ForgeryDataset
from focal_pl.data.shards import ShardFolder, StreamItem, write_shards
from focal_pl.data.sources import FolderPairs
from focal_pl.data.synthetic import PhotoPool, random_region
from focal_pl.data.transforms import Augmentations

from common import table, times, write_result


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--pool", default=None, help="folder of photos (default: scikit-image's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        source = make_folder(Path(tmp) / "folder", args.images, args.pool)
        write_shards([source], Path(tmp) / "shards", progress=False)
        shards, augment = ShardFolder(Path(tmp) / "shards"), Augmentations(pad_to=1024)
        plain, augmented = ForgeryDataset([source], 1024), ForgeryDataset([source], 1024, augment=augment)
        from_shards, from_shards_aug = StreamItem(1024), StreamItem(1024, augment)
        paths = {
            "folder, decode + resize": lambda i: plain[i],
            "folder, decode + augment + resize": lambda i: augmented[i],
            "shards, decode + resize": lambda i: from_shards(shards.read(i)),
            "shards, decode + augment + resize": lambda i: from_shards_aug(shards.read(i)),
        }
        torch.manual_seed(0)
        figures = {name: args.images / min(times(lambda: [read(i) for i in range(args.images)], 2))
                   for name, read in paths.items()}
    write_result("data_throughput", {"images": args.images, "pool": args.pool,
                                     "images_per_second_per_worker": figures},
                 table(["path", "images / s / worker"], ((name, f"{v:.1f}") for name, v in figures.items())))


if __name__ == "__main__":
    main()
