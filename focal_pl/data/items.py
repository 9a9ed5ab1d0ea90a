"""One item of a batch (``Item``): what every split's dataset yields and ``collate`` stacks.

An unreadable item is not an exception but an ``Item`` without an image whose ``problems`` list
``(where, reason)`` of each file left out in its place (``skipped`` counts them): loader workers
report nothing themselves, the training process warns once per file and keeps the count
(``FocalModule``), whatever worker met it and however many epochs meet it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from focal_pl.data.degradations import Degradation
from focal_pl.data.transforms import Augmentations, image_to_tensor, mask_to_tensor, resize_pair


@dataclass
class Item:
    """One image as the model sees it.

    Attributes:
        name: the image's name (its file for file sources).
        image: ``3 x S x S`` in [0, 1] (or the image's own size at native resolution); None for a
            stand-in of unreadable items.
        mask: ``1 x S x S`` in {0, 1}, at the image tensor's size.
        size: the image's own size (H, W), at which evaluation scores.
        truth: whether the mask is a ground truth (False for a user's images without one).
        mask_full: the truth at the image's own size (bool), for evaluation; None in training.
        skipped: unreadable items left out in this one's place; ``problems`` says which and why.
    """

    name: str = ""
    image: Tensor | None = None
    mask: Tensor | None = None
    size: tuple[int, int] = (0, 0)
    truth: bool = True
    mask_full: Tensor | None = None
    skipped: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether it holds an image (else it stands for the unreadable items in ``problems``)."""
        return self.image is not None


def problem(where: str, error: BaseException | str) -> tuple[str, str]:
    """``(where, reason)`` of a skipped item, without the file name repeated in the reason."""
    reason = str(error)
    return where, reason[len(where) + 2 :] if reason.startswith(f"{where}: ") else reason


def skipped_item(problems: list[tuple[str, str]]) -> Item:
    """The item that stands for unreadable ones: no image, their problems."""
    return Item(skipped=len(problems), problems=list(problems))


def prepare_item(
    image: np.ndarray, mask: np.ndarray, name: str, image_size: int | None,
    augment: Augmentations | None = None, keep_full_mask: bool = False,
    degradation: Degradation | None = None, truth: bool = True, seed: int | None = None,
) -> Item:
    """A decoded pair -> an ``Item``: (degraded,) augmented, resized, as tensors. ``size`` is the
    image's own size, at which evaluation scores; ``truth`` says whether the mask is a ground truth
    (False for a user's images without masks)."""
    if degradation is not None:
        image, mask = degradation(image, mask, name)
    size = (int(image.shape[0]), int(image.shape[1]))
    full = torch.from_numpy(mask.astype(bool)) if keep_full_mask else None
    if augment is not None:
        image, mask = augment(image, mask, seed)
    if image_size is not None:  # None: the image's own resolution (native inference by tiles)
        image, mask = resize_pair(image, mask, image_size)
    return Item(name=name, image=image_to_tensor(image), mask=mask_to_tensor(mask), size=size, truth=truth,
                mask_full=full)
