"""The batch every split delivers: the model's inputs and what stays on the host, as one typed object
stacked from typed ``Item``s (no dict whose keys each consumer spells again)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor

from focal_pl.data.items import Item


@dataclass
class Batch:
    """Images of one loader step.

    Attributes:
        image: ``B x 3 x H x W`` in [0, 1] (the training size, or one image at its own size with
            ``tile``); None when no item of the step was readable.
        mask: ``B x 1 x H x W`` in {0, 1}, at the image tensor's size.
        name: each image's name (its file for file sources).
        size: each image's own size (H, W), where evaluation scores.
        truth: whether each mask is a ground truth (False for a user's images without one).
        mask_full: each full-size truth (bool), for evaluation splits; None in training.
        tile: the images are at their own resolution, to be seen in tiles of this size.
        skipped: unreadable items left out of this step; ``problems`` says which and why.
    """

    image: Tensor | None = None
    mask: Tensor | None = None
    name: list[str] = field(default_factory=list)
    size: list[tuple[int, int]] = field(default_factory=list)
    truth: list[bool] = field(default_factory=list)
    mask_full: list[Tensor] | None = None
    tile: int | None = None
    skipped: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.name)

    @property
    def usable(self) -> bool:
        """Whether the step has any readable image."""
        return self.image is not None

    def to_device(self, device: torch.device | str, channels_last: bool = False) -> Batch:
        """The model inputs (``image``, ``mask``) on ``device``; the rest stays on the host."""
        if not self.usable:
            return self
        image = self.image.to(device, non_blocking=True)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return dataclasses.replace(self, image=image, mask=self.mask.to(device, non_blocking=True))

    def pin_memory(self) -> Batch:
        """Page-locked model inputs (the DataLoader calls this with ``pin_memory=True``)."""
        if not self.usable:
            return self
        return dataclasses.replace(self, image=self.image.pin_memory(), mask=self.mask.pin_memory())

    def host_copy(self, keep_image: bool = False) -> Batch:
        """What a host thread needs to finish the batch: no device tensor (the image back on the
        host only with ``keep_image``, for images whose file cannot be read again)."""
        image = self.image.detach().float().cpu() if keep_image and self.usable else None
        return dataclasses.replace(self, image=image, mask=None)


def collate(items: list[Item], tile: int | None = None) -> Batch:
    """Items -> a ``Batch``: images and masks stacked, the rest as lists, skipped items counted.
    ``tile``: the images are at their own resolution (one per batch)."""
    good = [item for item in items if item.usable]
    batch = Batch(skipped=sum(item.skipped for item in items),
                  problems=[p for item in items for p in item.problems])
    if not good:
        return batch
    return dataclasses.replace(
        batch, image=torch.stack([item.image for item in good]), mask=torch.stack([item.mask for item in good]),
        name=[item.name for item in good], size=[tuple(item.size) for item in good],
        truth=[item.truth for item in good],
        mask_full=[item.mask_full for item in good] if good[0].mask_full is not None else None, tile=tile)
