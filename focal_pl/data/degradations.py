"""Test-time degradations for the robustness protocol: JPEG, resize, Gaussian blur, Gaussian
noise, and a social-network chain (resize to a maximum side, then JPEG). Each is named by a spec
string ``kind:value`` (e.g. ``jpeg:70``); the mask follows every geometric change. Deterministic:
the noise of an image is seeded by its name.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("none", "jpeg", "resize", "blur", "noise", "osn")

# The grid of `robustness: true`. JPEG, blur kernel and noise std follow IMDL-BenCo's protocol.
ROBUSTNESS_GRID: dict[str, tuple[float, ...]] = {
    "jpeg": (100, 95, 90, 85, 80, 75, 70, 65, 60, 55, 50),
    "resize": (1.0, 0.9, 0.8, 0.7, 0.6, 0.5),
    "blur": (3, 7, 11, 15, 19, 23),
    "noise": (3, 7, 11, 15, 19, 23),
    "osn": (2048, 1600, 1280, 1024, 800),
}
OSN_QUALITY = 75


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _resize(image: np.ndarray, mask: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    if factor == 1.0:
        return image, mask
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return (cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))


@dataclass(frozen=True)
class Degradation:
    """One degradation: ``kind`` in none / jpeg / resize / blur / noise / osn and its ``value``
    (quality, scale factor, blur kernel size, noise std in 0-255 levels, maximum side)."""

    kind: str = "none"
    value: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Degradation:
        kind, _, value = spec.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown degradation {spec!r}; kinds: {', '.join(KINDS)} (e.g. 'jpeg:70')")
        if kind != "none" and not value:
            raise ValueError(f"degradation {spec!r} needs a value, e.g. '{kind}:{ROBUSTNESS_GRID[kind][1]}'")
        return cls(kind, float(value) if value else 0.0)

    @property
    def label(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.value:g}"

    def __call__(self, image: np.ndarray, mask: np.ndarray, name: str = "") -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "jpeg":
            return _jpeg(image, int(self.value)), mask
        if self.kind == "resize":
            return _resize(image, mask, self.value)
        if self.kind == "blur":
            k = int(self.value) | 1  # odd kernel
            return cv2.GaussianBlur(image, (k, k), 0), mask
        if self.kind == "noise":
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            noisy = image.astype(np.float32) + rng.normal(0.0, self.value, image.shape).astype(np.float32)
            return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), mask
        if self.kind == "osn":
            side = max(image.shape[:2])
            image, mask = _resize(image, mask, min(1.0, self.value / side))
            return _jpeg(image, OSN_QUALITY), mask
        return image, mask


def robustness_grid() -> list[str]:
    """Every degradation spec of the protocol, the undegraded baseline first."""
    return ["none"] + [f"{kind}:{value:g}" for kind, values in ROBUSTNESS_GRID.items() for value in values]
