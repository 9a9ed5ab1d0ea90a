"""One item of a batch and the batch itself: the dict every split's loader yields.

An item is ``{"name", "image" 3 x S x S, "mask" 1 x S x S, "size", "truth", ["mask_full"], "skipped",
"problems"}``. ``problems`` lists ``(where, reason)`` of each unreadable item that was left out in
its place (``skipped`` counts them): loader workers report nothing themselves, the training
process warns once per file and keeps the count (``FocalModule``), whatever worker met it and
however many epochs meet it again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from focal_pl.data.degradations import Degradation
from focal_pl.data.transforms import Augmentations, image_to_tensor, mask_to_tensor, resize_pair


def problem(where: str, error: BaseException | str) -> tuple[str, str]:
    """``(where, reason)`` of a skipped item, without the file name repeated in the reason."""
    reason = str(error)
    return where, reason[len(where) + 2 :] if reason.startswith(f"{where}: ") else reason


def skipped_item(problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The item that stands for unreadable ones: no image, their problems."""
    return {"skipped": len(problems), "problems": list(problems)}


def prepare_item(
    image: np.ndarray, mask: np.ndarray, name: str, image_size: int | None,
    augment: Augmentations | None = None, keep_full_mask: bool = False,
    degradation: Degradation | None = None, truth: bool = True, seed: int | None = None,
) -> dict[str, Any]:
    """A decoded pair -> the item dict of a batch: (degraded,) augmented, resized, as tensors.
    ``size`` is the image's own size, at which evaluation scores; ``truth`` says whether the mask
    is a ground truth (False for a user's images without masks)."""
    if degradation is not None:
        image, mask = degradation(image, mask, name)
    item: dict[str, Any] = {"name": name, "skipped": 0, "problems": [], "size": image.shape[:2],
                           "truth": truth}
    if keep_full_mask:
        item["mask_full"] = torch.from_numpy(mask.astype(bool))
    if augment is not None:
        image, mask = augment(image, mask, seed)
    if image_size is not None:  # None: the image's own resolution (native inference by tiles)
        image, mask = resize_pair(image, mask, image_size)
    item["image"] = image_to_tensor(image)
    item["mask"] = mask_to_tensor(mask)
    return item
