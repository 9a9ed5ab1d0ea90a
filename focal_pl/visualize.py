"""Pictures for people: image / truth / prediction side by side, and mask overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch import Tensor

from focal_pl.atomic import naming


def to_uint8_image(image: Tensor | np.ndarray) -> np.ndarray:
    """A float 3 x H x W tensor in [0, 1] (or a uint8 H x W x 3 array) -> uint8 H x W x 3."""
    if isinstance(image, Tensor):
        image = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image)


def _mask_rgb(mask: Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    m = mask.cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    m = cv2.resize(m.astype(np.uint8) * 255, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return np.repeat(m[..., None], 3, axis=2)


def overlay(image: np.ndarray, mask: Tensor | np.ndarray, color=(255, 40, 40), alpha=0.45) -> np.ndarray:
    """The image with the forged mask tinted in ``color`` and outlined."""
    m = _mask_rgb(mask, image.shape[:2])[..., 0] > 0
    out = image.astype(np.float32)
    out[m] = out[m] * (1 - alpha) + np.array(color, np.float32) * alpha
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, 1)
    return out


def side_by_side(
    image: Tensor | np.ndarray, truth: Tensor | np.ndarray, prediction: Tensor | np.ndarray,
    caption: str = "", min_side: int = 256,
) -> np.ndarray:
    """One RGB strip: image | truth | prediction (masks white = forged), labelled, with a caption.
    Images smaller than ``min_side`` are enlarged (nearest) so that they can be looked at."""
    rgb = to_uint8_image(image)
    factor = -(-min_side // min(rgb.shape[:2]))
    if factor > 1:
        rgb = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    size = rgb.shape[:2]
    panels = [rgb, _mask_rgb(truth, size), _mask_rgb(prediction, size)]
    labels = ["image", "truth", "prediction"]
    band = 18
    strips = []
    for panel, label in zip(panels, labels):
        head = np.full((band, panel.shape[1], 3), 32, np.uint8)
        cv2.putText(head, label, (4, band - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        strips.append(np.concatenate([head, panel], 0))
    gap = np.full((size[0] + band, 4, 3), 128, np.uint8)
    out = np.concatenate([strips[0], gap, strips[1], gap, strips[2]], 1)
    if caption:
        foot = np.full((band, out.shape[1], 3), 32, np.uint8)
        cv2.putText(foot, caption, (4, band - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        out = np.concatenate([out, foot], 0)
    return out


def save_rgb(path, image: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG (cv2 wants BGR); a failed write names the file."""
    encoded, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not encoded:
        raise ValueError(f"could not encode a {image.shape} image as PNG for {path}")
    with naming(path):
        Path(path).write_bytes(data.tobytes())


__all__ = ["overlay", "save_rgb", "side_by_side", "to_uint8_image"]
