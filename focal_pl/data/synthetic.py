"""Synthetic forgeries made from pristine photos: splice, copy-move and inpainting removal.

Every item is a pure function of ``(seed, index)``, so a data set is reproducible across runs,
workers and machines. The forged region keeps its own processing history (resampling, noise, JPEG,
blur), which is the kind of trace a forensic extractor must learn; global post-processing then
runs over the composite, the mask following every geometric step.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageOps

from focal_pl.data.sources import IMAGE_SUFFIXES, ForgerySource, Sample

log = logging.getLogger(__name__)

Kind = Literal["splice", "copy_move", "inpaint"]
KINDS: tuple[str, ...] = ("splice", "copy_move", "inpaint")

# scikit-image's bundled sample photographs: the default pool, shipped by a dependency.
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png",
    "motorcycle_right.png", "page.png", "rocket.jpg",
)


def skimage_photos() -> list[str]:
    """Paths of scikit-image's bundled sample photographs (no download involved)."""
    import skimage.data

    base = Path(skimage.data.data_dir)
    paths = [base / name for name in SKIMAGE_PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-image's sample photos are missing: {missing}")
    return [str(p) for p in paths]


class PhotoPool:
    """Pristine photos: scikit-image's sample photos (``root=None``) or every image in a folder tree.

    Photos whose long side exceeds ``max_side`` are downscaled on load; a process keeps the last
    ``cache`` photos decoded.
    """

    def __init__(self, root: str | None = None, max_side: int = 1024, cache: int = 32) -> None:
        self.root = root
        self.max_side = max_side
        if root is None:
            self.names: list[str] = skimage_photos()
        else:
            base = Path(root).expanduser()
            if not base.is_dir():
                raise FileNotFoundError(f"photo pool folder {base} does not exist")
            self.names = sorted(
                str(p) for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
            )
            if len(self.names) < 2:
                raise ValueError(f"photo pool {base} holds {len(self.names)} images; need >= 2")
        self.cache = cache
        self._load = lru_cache(maxsize=cache)(self._read)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_load")  # a per-process cache: not sent to workers
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._load = lru_cache(maxsize=self.cache)(self._read)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        return self._load(index)

    def _read(self, index: int) -> np.ndarray:
        name = self.names[index]
        try:
            with Image.open(name) as raw:
                image = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))
        except OSError as error:
            raise ValueError(f"{name}: not a readable image ({error})") from error
        side = max(image.shape[:2])
        if side > self.max_side:
            scale = self.max_side / side
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return image


# ---------------------------------------------------------------- building blocks


def random_crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A square crop of random scale resized to ``size`` (the resampling factor varies per crop)."""
    h, w = photo.shape[:2]
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1)) if min(h, w) > 3 * 8 else min(h, w)
    side = max(side, 8)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[y : y + side, x : x + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def random_region(rng: np.random.Generator, size: int, area: tuple[float, float]) -> np.ndarray:
    """A uint8 {0,1} mask of an ellipse, a polygon or a smooth blob covering ``area`` of the image."""
    target = rng.uniform(*area) * size * size
    mask = np.zeros((size, size), np.uint8)
    shape = rng.choice(["ellipse", "polygon", "blob"])
    if shape == "ellipse":
        ratio = rng.uniform(0.4, 1.0)
        a = np.sqrt(target / (np.pi * ratio))
        axes = (max(2, int(a)), max(2, int(a * ratio)))
        center = _center(rng, size, max(axes))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif shape == "polygon":
        radius = np.sqrt(target / np.pi) * 1.25
        cx, cy = _center(rng, size, int(radius))
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(4, 9))))
        r = radius * rng.uniform(0.6, 1.2, angles.size)
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    else:
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / 10)
        threshold = np.quantile(noise, 1.0 - target / (size * size))
        mask = (noise > threshold).astype(np.uint8)
    if mask.sum() < 16:  # degenerate draw: fall back to a centered square
        q = max(4, int(np.sqrt(target)) // 2)
        mask[size // 2 - q : size // 2 + q, size // 2 - q : size // 2 + q] = 1
    return mask


def _center(rng: np.random.Generator, size: int, margin: int) -> tuple[int, int]:
    low, high = min(margin, size // 2), max(min(margin, size // 2) + 1, size - margin)
    return int(rng.integers(low, high)), int(rng.integers(low, high))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def add_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def local_history(rng: np.random.Generator, patch: np.ndarray) -> np.ndarray:
    """Give pasted content a processing history of its own: resampling, noise, JPEG or blur."""
    size = patch.shape[0]
    for op in rng.choice(["resample", "noise", "jpeg", "blur"], size=2, replace=False):
        if op == "resample":
            factor = rng.uniform(0.4, 0.8)
            small = cv2.resize(patch, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            patch = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
        elif op == "noise":
            patch = add_noise(rng, patch, rng.uniform(3.0, 8.0))
        elif op == "jpeg":
            patch = jpeg(patch, int(rng.integers(40, 75)))
        else:
            patch = cv2.GaussianBlur(patch, (0, 0), rng.uniform(0.8, 1.6))
    return patch


def composite(
    host: np.ndarray, content: np.ndarray, region: np.ndarray, blend_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``content`` over ``host`` where ``region``; with ``blend_px`` > 0 the alpha is blurred
    (a soft boundary) and the truth is ``alpha > 0.5``."""
    alpha = region.astype(np.float32)
    if blend_px > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), blend_px)
    out = host.astype(np.float32) * (1 - alpha[..., None]) + content.astype(np.float32) * alpha[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), (alpha > 0.5).astype(np.uint8)


def copy_move_content(
    rng: np.random.Generator, image: np.ndarray, region: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Content for a copy-move: the image warped (scale, rotation, shift) so that a source area
    lands on ``region``; returns (warped image, region) with the region where the warp is defined."""
    size = image.shape[0]
    scale = rng.uniform(0.7, 1.3)
    angle = rng.uniform(-30, 30)
    shift = rng.uniform(-0.35, 0.35, 2) * size
    center = (size / 2, size / 2)
    matrix = cv2.getRotationMatrix2D(center, angle, scale)
    matrix[:, 2] += shift
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    valid = cv2.warpAffine(np.ones((size, size), np.uint8), matrix, (size, size),
                           flags=cv2.INTER_NEAREST, borderValue=0)
    return warped, region & valid


def postprocess(
    rng: np.random.Generator, image: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Global post-processing of the composite: resize (mask follows, nearest), blur, noise, JPEG."""
    if rng.random() < 0.5:
        factor = rng.uniform(0.6, 1.0)
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.7))
    if rng.random() < 0.3:
        image = add_noise(rng, image, rng.uniform(0.5, 2.0))
    if rng.random() < 0.5:
        image = jpeg(image, int(rng.integers(75, 100)))
    return image, mask


# ---------------------------------------------------------------- the data set


class SyntheticForgeries(ForgerySource):
    """``length`` seeded forgeries of ``size`` x ``size`` pixels made from a photo pool.

    Args:
        length: number of items.
        size: side of the square composite before post-processing.
        pool: folder of pristine photos; None = scikit-image's bundled sample photos.
        kinds: forgery types to draw from: splice, copy_move, inpaint.
        boundary: sharp, blended (alpha blurred by ``blend_px``; truth = alpha > 0.5) or mixed.
        area: range of the forged share of the image.
        authentic_fraction: share of items left untouched (all-zero masks).
        postprocess: run the global post-processing (resize, blur, noise, JPEG).
        blend_px: Gaussian sigma of blended boundaries.
        seed: the data set's seed; item i depends only on (seed, i).
    """

    def __init__(
        self,
        length: int = 64,
        size: int = 256,
        pool: str | None = None,
        kinds: list[Kind] | tuple[Kind, ...] = KINDS,
        boundary: Literal["sharp", "blended", "mixed"] = "mixed",
        area: tuple[float, float] = (0.05, 0.3),
        authentic_fraction: float = 0.0,
        postprocess: bool = True,
        blend_px: float = 3.0,
        seed: int = 0,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(kinds)}")
        if boundary not in ("sharp", "blended", "mixed"):
            raise ValueError(f"boundary must be sharp, blended or mixed, got {boundary!r}")
        if not 0 < area[0] <= area[1] < 1:
            raise ValueError(f"area must be a range inside (0, 1), got {area}")
        self.length = length
        self.size = size
        self.pool = PhotoPool(pool)
        self.kinds = tuple(kinds)
        self.boundary = boundary
        self.area = tuple(area)
        self.authentic_fraction = authentic_fraction
        self.postprocess = postprocess
        self.blend_px = blend_px
        self.seed = seed
        self.name = f"synthetic-{seed}"

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(f"{self.name} has {self.length} items, asked for {index}")
        rng = np.random.default_rng([self.seed, index])
        size = self.size
        host_index = int(rng.integers(len(self.pool)))
        host = random_crop(rng, self.pool[host_index], size)
        meta = {"name": self.describe(index), "kind": "authentic", "host": self.pool.names[host_index]}
        if rng.random() < self.authentic_fraction:
            image, mask = host, np.zeros((size, size), np.uint8)
        else:
            kind = str(rng.choice(self.kinds))
            region = random_region(rng, size, self.area)
            blended = self.boundary == "blended" or (self.boundary == "mixed" and rng.random() < 0.5)
            blend = self.blend_px if blended else 0.0
            if kind == "splice":
                donor_index = (host_index + int(rng.integers(1, len(self.pool)))) % len(self.pool)
                donor = local_history(rng, random_crop(rng, self.pool[donor_index], size))
                image, mask = composite(host, donor, region, blend)
                meta["donor"] = self.pool.names[donor_index]
            elif kind == "copy_move":
                content, region = copy_move_content(rng, host, region)
                image, mask = composite(host, content, region, blend)
            else:
                method = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
                filled = cv2.inpaint(host, region, 5, method)
                image, mask = composite(host, filled, region, blend)
            meta.update(kind=kind, boundary="blended" if blended else "sharp")
        if self.postprocess:
            image, mask = postprocess(rng, image, mask)
        return np.ascontiguousarray(image), mask, meta
