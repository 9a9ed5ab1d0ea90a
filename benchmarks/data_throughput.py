"""Decode + augment throughput per loader worker at 1024 x 1024, from a folder and from shards of the same
bytes (each chunk's sha256 verified when first opened); one process reads every item, best of 2 passes.

    python benchmarks/data_throughput.py [--images 48] [--pool ../shared/data/pristine]
"""

from __future__ import annotations

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

from common import parser, table, times, write_result


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--images", type=int, default=48, help="images of each measured pass")
    options.add_argument("--pool", help="folder of photos (default: scikit-image's)")
    args = options.parse_args()
    torch.set_num_threads(1)
    photos, rng = PhotoPool(args.pool, max_side=2048), np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("images", "masks"):
            (root / folder).mkdir()
        for i in range(args.images):
            Image.fromarray(photos[i % len(photos)]).resize((1024, 1024), Image.BICUBIC).save(
                root / "images" / f"{i:04d}.jpg", quality=92)
            Image.fromarray(random_region(rng, 1024, (0.05, 0.3)) * 255).save(root / "masks" / f"{i:04d}.png")
        source = FolderPairs(str(root / "images"))
        write_shards([source], root / "shards", progress=False)
        shards, augment = ShardFolder(root / "shards"), Augmentations(pad_to=1024)
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
    write_result("data_throughput", {"images": args.images, "pool": args.pool, "images_per_second_per_worker": figures},
                 table(["path", "images / s / worker"], ((name, f"{v:.1f}") for name, v in figures.items())))


if __name__ == "__main__":
    main()
