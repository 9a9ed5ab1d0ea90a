"""Synthetic stand-ins of the paper's training sets, written to disk in their readers' native layouts.

``focal-pl data synth cm_raise /tmp/cm_raise --items 5000`` writes forged images and masks with the
set's layout, image sizes, file formats and JPEG qualities, so that ``data check``, ``data shard`` and
a fit on the mix can be tried at scale before the real sets are at hand (``benchmarks/data_scale.py``
measures them so). The content is a splice of two photos of the pool, whatever the set's own kind of
forgery: a stand-in for the pipeline, not for training. Item i depends only on (set, seed, i).
"""

from __future__ import annotations

import io
import json
import shutil
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from focal_pl.files.atomic import remove_stale_temporaries, replace_atomically, temporary_beside

FORMATS = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF"}
MARKER = "SYNTHETIC.json"  # written last: what the folder holds, and that it is not a real data set


@dataclass(frozen=True)
class SetProfile:
    """How one set looks on disk: the reader that reads it and its kind of images (sizes, formats)."""

    reader: str  # the name `focal-pl data check` knows: catnet, casia, imd2020, folder
    images: str  # coco, raise, raise_c, casia, imd, square
    what: str


PROFILES = {
    "sp_coco": SetProfile("catnet", "coco", "COCO-sized JPEGs (640 x 480 and kin, quality 80-95), a CAT-Net list"),
    "cm_coco": SetProfile("catnet", "coco", "as sp_coco"),
    "cm_raise": SetProfile("catnet", "raise", "RAISE-sized JPEGs (long side 1280-2048, quality 85-98), a CAT-Net list"),
    "cm_c_raise": SetProfile("catnet", "raise_c", "as cm_raise, JPEG-compressed once before (quality 60-90)"),
    "casia2": SetProfile("casia", "casia", "CASIA v2's Tp/ and 'CASIA 2 Groundtruth/': 384 x 256 mostly, 35% TIFF"),
    "imd2020": SetProfile("imd2020", "imd", "IMD2020's folders of *_0.jpg (20% .png) and *_0_mask.png, long side "
                          "640-2048"),
    "folder": SetProfile("folder", "square", "images/ + masks/ of --size x --size JPEGs (quality 92)"),
}

_POOL: Any = None


def _init(pool: str | None) -> None:
    """A generation process: one OpenCV thread, its own photo pool (photos up to 2048 px)."""
    global _POOL
    from focal_pl.data.synthetic import PhotoPool

    cv2.setNumThreads(1)
    _POOL = PhotoPool(pool, max_side=2048, cache=16)


@lru_cache(maxsize=1)
def _noise() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 4, (512, 512, 3)).round().astype(np.int16)


def _view(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random photo of the pool scaled to cover ``width`` x ``height``, cropped there, maybe mirrored."""
    photo = _POOL[int(rng.integers(len(_POOL)))]
    h, w = photo.shape[:2]
    scale = max(width / w, height / h) * rng.uniform(1.0, 1.3)
    resized = cv2.resize(photo, (max(width, round(w * scale)), max(height, round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y, x = int(rng.integers(0, resized.shape[0] - height + 1)), int(rng.integers(0, resized.shape[1] - width + 1))
    view = resized[y : y + height, x : x + width]
    return view[:, ::-1] if rng.random() < 0.5 else view


def _grain(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Sensor-like noise (sigma 4), so that JPEG sizes are a camera's, not those of smooth resampled photos."""
    h, w = image.shape[:2]
    y, x = int(rng.integers(512)), int(rng.integers(512))
    tiles = np.tile(_noise(), (-(-(h + y) // 512), -(-(w + x) // 512), 1))[y : y + h, x : x + w]
    return np.clip(image.astype(np.int16) + tiles, 0, 255).astype(np.uint8)


def _size(kind: str, rng: np.random.Generator, side: int) -> tuple[int, int]:
    """(width, height) of an image of the set's kind; a fifth of them portrait."""
    if kind == "square":
        return side, side
    if kind == "coco":
        width, height = [(640, 480), (640, 427), (640, 360), (500, 375), (640, 512)][int(rng.integers(5))]
    elif kind in ("raise", "raise_c"):
        long = int(rng.integers(1280, 2049))
        width, height = long, round(long / (1.5 if rng.random() < 0.7 else 4 / 3))
    elif kind == "casia":
        width, height = (384, 256) if rng.random() < 0.7 else (int(rng.integers(240, 801)), int(rng.integers(160, 601)))
    else:  # imd
        long = int(rng.integers(640, 2049))
        width, height = long, round(long * rng.uniform(0.5, 0.9))
    return (height, width) if rng.random() < 0.2 else (width, height)


def _encode(image: np.ndarray, ext: str, quality: int = 90) -> bytes:
    """The bytes of ``image`` saved as ``ext`` (jpg at ``quality``, png or tif)."""
    buffer = io.BytesIO()
    extra = {"jpg": {"quality": quality}, "png": {"compress_level": 6}}.get(ext, {})
    Image.fromarray(image).save(buffer, format=FORMATS[ext], **extra)
    return buffer.getvalue()


def _one(task: tuple[str, int, str, int, int]) -> tuple[str, str, int]:
    """Write item ``index`` of set ``name`` (image and mask) under ``root``; returns (set, format, image bytes)."""
    from focal_pl.data.synthetic import random_region

    name, index, root, seed, side = task
    kind, folder = PROFILES[name].images, Path(root)
    rng = np.random.default_rng([zlib.crc32(name.encode()), index, *([seed] if seed else [])])
    width, height = _size(kind, rng, side)
    base, donor = _view(rng, width, height), _view(rng, width, height)
    mask = cv2.resize(random_region(rng, 256, (0.03, 0.25)), (width, height), interpolation=cv2.INTER_NEAREST)
    image = _grain(rng, np.where(mask[..., None].astype(bool), donor, base))
    if kind in ("coco", "raise", "raise_c", "square"):
        ext, quality = "jpg", 92 if kind == "square" else int(rng.integers(80, 96) if kind == "coco" else
                                                              rng.integers(85, 99))
        if kind == "raise_c":  # compressed once more, at another quality
            first = _encode(image, "jpg", int(rng.integers(60, 91)))
            image = np.ascontiguousarray(cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])
        image_path, mask_path = folder / "images" / f"{index:06d}.{ext}", folder / "masks" / f"{index:06d}.png"
    elif kind == "casia":  # the quality is drawn last: a TIFF ignores it
        ext, quality = "tif" if rng.random() < 0.35 else "jpg", int(rng.integers(85, 101))
        stem = f"Tp_{'S' if index % 2 else 'D'}_NRN_S_N_sim{index:05d}_sim{index + 1:05d}_{10000 + index}"
        image_path, mask_path = folder / "Tp" / f"{stem}.{ext}", folder / "CASIA 2 Groundtruth" / f"{stem}_gt.png"
    else:
        ext, quality = "png" if rng.random() < 0.2 else "jpg", int(rng.integers(80, 96))
        post = folder / f"post{index // 3:05d}"
        image_path, mask_path = post / f"{index:05d}_0.{ext}", post / f"{index:05d}_0_mask.png"
    data = _encode(image, ext, quality)
    for path, content in ((image_path, data), (mask_path, _encode(mask * 255, "png"))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return name, ext, len(data)


def read_path(name: str, out: str | Path) -> str:
    """What ``focal-pl data check <reader>`` takes for the set written to ``out``: its list file or its root."""
    return str(Path(out) / f"{name}_list.txt") if PROFILES[name].reader == "catnet" else str(out)


def _claim(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` to write the set in, once ``out`` is known to be new or empty
    (those of killed runs are removed first)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} is not an empty folder: give a new one (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent, out.name)
    partial = temporary_beside(out)
    partial.mkdir()
    return partial


def write_set(name: str, out: str | Path, items: int, pool: str | None = None, workers: int = 1, seed: int = 0,
              size: int = 1024) -> dict[str, Any]:
    """Write ``items`` forged images and masks of set ``name`` (a key of ``PROFILES``) to the new folder ``out``
    in ``workers`` processes; returns what ``SYNTHETIC.json`` records (counts, formats, mean image bytes).

    The folder appears whole or not at all: it is written beside ``out`` and renamed when complete.
    """
    return write_sets({name: (out, items)}, pool, workers, seed, size)[name]


def write_sets(sets: dict[str, tuple[str | Path, int]], pool: str | None = None, workers: int = 1, seed: int = 0,
               size: int = 1024) -> dict[str, dict[str, Any]]:
    """``write_set`` of several sets (name -> (folder, items)) by one group of ``workers`` processes."""
    for name, (_, items) in sets.items():
        if name not in PROFILES:
            raise ValueError(f"unknown set {name!r}: one of {', '.join(PROFILES)}")
        if items < 1 or workers < 1 or size < 32:
            raise ValueError(f"items and workers must be at least 1 and size at least 32, got {items}, {workers}, "
                             f"{size}")
    partials: dict[str, Path] = {}
    try:
        for name, (out, _) in sets.items():
            partials[name] = _claim(Path(out))
        tasks = [(name, index, str(partials[name]), seed, size) for name, (_, items) in sets.items()
                 for index in range(items)]
        if workers == 1:
            _init(pool)
            made = list(map(_one, tasks))
        else:
            from multiprocessing import get_context

            with get_context("spawn").Pool(workers, initializer=_init, initargs=(pool,)) as processes:
                made = list(processes.imap_unordered(_one, tasks, chunksize=8))
        return {name: _finish(name, Path(out), partials[name], [m[1:] for m in made if m[0] == name], seed, pool,
                              size) for name, (out, _) in sets.items()}
    except BaseException:
        for partial in partials.values():
            shutil.rmtree(partial, ignore_errors=True)
        raise


def _finish(name: str, out: Path, partial: Path, made: list[tuple[str, int]], seed: int, pool: str | None,
            size: int) -> dict[str, Any]:
    """The set's list file (CAT-Net) and ``SYNTHETIC.json``, then the folder renamed into place."""
    if PROFILES[name].reader == "catnet":
        lines = [f"images/{i:06d}.jpg,masks/{i:06d}.png" for i in range(len(made))]
        (partial / f"{name}_list.txt").write_text("\n".join(lines) + "\n")
    record = {"set": name, "synthetic": True, "what": PROFILES[name].what, "reader": PROFILES[name].reader,
              "items": len(made), "formats": dict(Counter(ext for ext, _ in made)),
              "mean_image_bytes": float(np.mean([n for _, n in made])), "seed": seed, "pool": pool,
              **({"size": size} if PROFILES[name].images == "square" else {})}
    (partial / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    try:
        replace_atomically(partial, out)  # a folder renames over an empty one, never over a filled one
    except OSError as error:  # another process wrote there meanwhile
        raise ValueError(f"{out} was written by another process meanwhile ({error.strerror}); this run's "
                         "set was not kept") from error
    return record
