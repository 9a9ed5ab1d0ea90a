"""Image/mask transforms: the paper's training augmentations (albumentations, mask-aware) and the
resize + tensor conversion every split shares."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor


# The official code's main.py (HighwayWu/FOCAL, read 2026-12-05) used albumentations 1.x defaults
# for two transforms whose parameters albumentations 2 renamed and re-defaulted; in 2.x terms:
OFFICIAL_DOWNSCALE = (0.25, 0.25)  # Downscale(scale_min=0.25, scale_max=0.25): 1.x's default
OFFICIAL_NOISE_STD = (10**0.5 / 255, 50**0.5 / 255)  # GaussNoise(var_limit=(10, 50)) on 0-255 pixels


class Augmentations:
    """docs/method.md section 7, as the official code's ``main.py``: with probability ``p``: random downscale
    (0.5-1.0) and pad to ``pad_to``, one of flips / rot90 / transpose, JPEG (quality 50-95), and with
    ``distort_p`` one of blur / noise / colour / elastic-grid distortions. The mask follows every
    geometric change. Every range is the official one (its albumentations 1.x defaults translated to
    2.x), except that albumentations 2 has no ``alpha_affine`` in ``ElasticTransform`` (the official
    ``120 * 0.03`` random affine of that transform is left out).

    Args:
        p: probability that an image is augmented at all.
        pad_to: side the downscaled image is padded back to (reflection, as the official code's
            albumentations default did); None skips padding.
        jpeg_quality: quality range of the re-compression.
        distort_p: probability of the blur / noise / colour / geometric distortion group.
        downscale_range: ``Downscale``'s scale range (official: 0.25, fixed).
        noise_std_range: ``GaussNoise``'s standard deviation range, as a fraction of the pixel range
            (official: variance 10-50 on 0-255, i.e. 0.0124-0.0277).
    """

    def __init__(
        self,
        p: float = 0.75,
        pad_to: int | None = 1024,
        jpeg_quality: tuple[int, int] = (50, 95),
        distort_p: float = 0.25,
        downscale_range: tuple[float, float] = OFFICIAL_DOWNSCALE,
        noise_std_range: tuple[float, float] = OFFICIAL_NOISE_STD,
    ) -> None:
        import albumentations as A

        self.p = p
        self.pad_to = pad_to
        steps = [A.RandomScale(scale_limit=(-0.5, 0.0), p=0.75)]
        if pad_to:
            steps.append(
                A.PadIfNeeded(min_height=pad_to, min_width=pad_to, border_mode=cv2.BORDER_REFLECT_101)
            )
        steps += [
            A.OneOf(
                [A.HorizontalFlip(p=1), A.VerticalFlip(p=1), A.RandomRotate90(p=1), A.Transpose(p=1)],
                p=0.75,
            ),
            A.ImageCompression(quality_range=tuple(jpeg_quality), p=0.75),
            A.OneOf(
                [
                    A.OneOf([A.Blur(p=1), A.GaussianBlur(p=1), A.MedianBlur(p=1), A.MotionBlur(p=1)], p=1),
                    A.OneOf(
                        [
                            A.Downscale(scale_range=tuple(downscale_range), p=1),
                            A.GaussNoise(std_range=tuple(noise_std_range), p=1),
                            A.ISONoise(p=1),
                            A.RandomBrightnessContrast(p=1),
                            A.RandomGamma(p=1),
                            A.RandomToneCurve(p=1),
                            A.Sharpen(p=1),
                        ],
                        p=1,
                    ),
                    A.OneOf(
                        [A.ElasticTransform(alpha=120, sigma=120 * 0.05, p=1), A.GridDistortion(p=1)],
                        p=1,
                    ),
                ],
                p=distort_p,
            ),
        ]
        self.pipeline = A.Compose(steps, p=p)
        self._seeded_with: int | None = None

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one pair. With ``seed`` (the training loader passes one per item and epoch) the
        result does not depend on which worker runs it, so an interrupted run can be resumed
        exactly. Without, albumentations' generator is reseeded from torch's per-worker seed:
        forked workers would otherwise all copy one state and augment alike."""
        if seed is not None:
            self.pipeline.set_random_seed(seed % 2**32)
            self._seeded_with = None
        else:
            seed = torch.initial_seed() % 2**32
            if seed != self._seeded_with:
                self.pipeline.set_random_seed(seed)
                self._seeded_with = seed
        out = self.pipeline(image=image, mask=mask)
        return out["image"], out["mask"]


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Both to ``size`` x ``size`` (aspect squashed, as the paper does): image bilinear, mask nearest."""
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    if mask.shape[:2] != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return image, mask


def image_to_tensor(image: np.ndarray) -> Tensor:
    """uint8 H x W x 3 -> float 3 x H x W in [0, 1] (no mean/std normalization, as the paper)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def mask_to_tensor(mask: np.ndarray) -> Tensor:
    """uint8 H x W in {0,1} -> float 1 x H x W."""
    return torch.from_numpy(np.ascontiguousarray(mask)).float()[None]


def stack_source(source: Any, size: int) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Every item of a source, resized to ``size``, as tensors in memory: images N x 3 x size x size,
    masks N x 1 x size x size, and each full-size truth mask (bool) to score against. For small
    in-memory experiments (benchmarks, learning tests), not for training at scale."""
    images, masks, full = [], [], []
    for i in range(len(source)):
        image, mask, _ = source[i]
        full.append(torch.from_numpy(mask.astype(bool)))
        image, mask = resize_pair(image, mask, size)
        images.append(image_to_tensor(image))
        masks.append(mask_to_tensor(mask))
    return torch.stack(images), torch.stack(masks), full
