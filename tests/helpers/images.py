"""Small image sets made in code for the tests: folders of image / mask pairs, and shards of them."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focal_pl.data.shards import write_shards
from focal_pl.data.sources import FolderPairs
from focal_pl.data.synthetic import SyntheticForgeries


def pairs_folder(root, n: int, seed: int = 0):
    """``root/images`` and ``root/masks``: ``n`` random 24 x 20 images, each with a forged rectangle."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        mask = np.zeros((20, 24), np.uint8)
        mask[2:9, 3:12] = 255
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    return root / "images"


CHUNK = "6KB"  # a few items per chunk, so that the fixtures have several chunks


def folder_set(root: Path, n: int = 6, corrupt: bool = True) -> FolderPairs:
    """``n`` JPEG / PNG-mask pairs under ``root`` (and a corrupt JPEG with ``corrupt``)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
            root / "images" / f"im{i}.jpg", quality=int(70 + i))
        mask = np.zeros((40, 48), np.uint8)
        mask[5 : 15 + i, 10:30] = 255
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    if corrupt:
        (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / "broken.png")
    return FolderPairs(str(root / "images"))


def fixture_sources(root: Path):
    return [FolderPairs(str(root / "data" / "images")), SyntheticForgeries(5, 48, seed=3)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    folder_set(root / "data")
    manifest = write_shards(fixture_sources(root), root / "out", chunk_bytes=CHUNK, progress=False)
    return root, fixture_sources(root)[0], manifest
