"""Pictures for people: image / truth / prediction / score map side by side (validation and test
pictures), and mask overlays (predict)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch import Tensor

from focal_pl.files.atomic import naming


def to_uint8_image(image: Tensor | np.ndarray) -> np.ndarray:
    """A float 3 x H x W tensor in [0, 1] (or a uint8 H x W x 3 array) -> uint8 H x W x 3."""
    if isinstance(image, Tensor):
        image = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image)


def _resized(panel: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    return cv2.resize(panel, (size[1], size[0]), interpolation=interpolation)


def mask_rgb(mask: Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask as a white-on-black RGB panel of ``size``."""
    m = mask.cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    m = _resized(m.astype(np.uint8) * 255, size, cv2.INTER_NEAREST)
    return np.repeat(m[..., None], 3, axis=2)


def score_rgb(score: Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 (or [0, 1] float) score map as a colour panel of ``size`` (dark: pristine, bright: forged)."""
    s = score.cpu().numpy() if isinstance(score, Tensor) else np.asarray(score)
    if s.dtype != np.uint8:
        s = np.clip(np.round(s.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(_resized(s, size, cv2.INTER_LINEAR), cv2.COLORMAP_INFERNO)
    return np.ascontiguousarray(coloured[..., ::-1])  # OpenCV's BGR to RGB


def overlay(image: np.ndarray, mask: Tensor | np.ndarray, color=(255, 40, 40), alpha=0.45) -> np.ndarray:
    """The image with the forged mask tinted in ``color`` and outlined."""
    m = mask_rgb(mask, image.shape[:2])[..., 0] > 0
    out = image.astype(np.float32)
    out[m] = out[m] * (1 - alpha) + np.array(color, np.float32) * alpha
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, 1)
    return out


def _band(width: int, text: str, height: int = 18) -> np.ndarray:
    band = np.full((height, width, 3), 32, np.uint8)
    cv2.putText(band, text, (4, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return band


def side_by_side(
    image: Tensor | np.ndarray, truth: Tensor | np.ndarray | None, prediction: Tensor | np.ndarray,
    score: Tensor | np.ndarray | None = None, caption: str = "", min_side: int = 256,
) -> np.ndarray:
    """One RGB strip: image | truth | prediction (masks white = forged) | score map, each labelled,
    with a caption below (the image's name and its numbers, each named). Images smaller than
    ``min_side`` are enlarged (nearest) so that they can be looked at; a panel without data
    (no truth, no score) is left out."""
    rgb = to_uint8_image(image)
    factor = -(-min_side // min(rgb.shape[:2]))
    if factor > 1:
        rgb = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    size = rgb.shape[:2]
    panels = [("image", rgb)]
    if truth is not None:
        panels.append(("truth", mask_rgb(truth, size)))
    panels.append(("prediction", mask_rgb(prediction, size)))
    if score is not None:
        panels.append(("score map", score_rgb(score, size)))
    gap = np.full((size[0] + 18, 4, 3), 128, np.uint8)
    columns = []
    for label, panel in panels:
        columns += [np.concatenate([_band(panel.shape[1], label), panel], 0), gap]
    out = np.concatenate(columns[:-1], 1)
    if caption:
        out = np.concatenate([out, _band(out.shape[1], caption)], 0)
    return out


def save_rgb(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG (cv2 wants BGR); a failed write names the file."""
    encoded, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not encoded:
        raise ValueError(f"could not encode a {image.shape} image as PNG for {path}")
    with naming(path):
        Path(path).write_bytes(data.tobytes())


__all__ = ["mask_rgb", "overlay", "save_rgb", "score_rgb", "side_by_side", "to_uint8_image"]
