"""ForgeryDataModule: sources -> augmented, resized tensors in batches, bad items skipped and counted."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from focal_pl.data.sources import ForgerySource
from focal_pl.data.transforms import Augmentations, image_to_tensor, mask_to_tensor, resize_pair

log = logging.getLogger(__name__)


class ForgeryDataset(Dataset):
    """One split: concatenated sources, each item augmented (training) and resized to ``image_size``.

    An item whose source raises (corrupt file, missing mask, ...) is logged with the file and the
    reason and comes back as None; ``collate`` drops it and counts it in the batch's ``skipped``.
    Evaluation items also carry the mask at the image's own resolution (``mask_full``), since the
    metrics are scored there.
    """

    def __init__(
        self,
        sources: list[ForgerySource],
        image_size: int,
        augment: Augmentations | None = None,
        keep_full_mask: bool = False,
    ) -> None:
        if not sources:
            raise ValueError("a split needs at least one source")
        self.sources = sources
        self.data = ConcatDataset(sources)
        self.image_size = image_size
        self.augment = augment
        self.keep_full_mask = keep_full_mask

    def __len__(self) -> int:
        return len(self.data)

    def _locate(self, index: int) -> tuple[ForgerySource, int]:
        import bisect

        which = bisect.bisect_right(self.data.cumulative_sizes, index)
        start = self.data.cumulative_sizes[which - 1] if which else 0
        return self.sources[which], index - start

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        source, local = self._locate(index)
        try:
            image, mask, meta = source.load(local)
            if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
                raise ValueError(
                    f"image {image.shape} and mask {mask.shape} do not form an H x W x 3 / H x W pair"
                )
        except Exception as error:  # a bad item must not stop a run hours in: report and skip
            log.warning("skipping %s: %s", source.describe(local), error)
            return None
        item: dict[str, Any] = {"name": str(meta.get("name", source.describe(local)))}
        if self.keep_full_mask:
            item["mask_full"] = torch.from_numpy(mask.astype(bool))
        if self.augment is not None:
            image, mask = self.augment(image, mask)
        image, mask = resize_pair(image, mask, self.image_size)
        item["image"] = image_to_tensor(image)
        item["mask"] = mask_to_tensor(mask)
        return item


def collate(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack images and masks, keep names and full-size masks as lists, count skipped items."""
    good = [item for item in items if item is not None]
    batch: dict[str, Any] = {"skipped": len(items) - len(good)}
    if not good:
        return batch
    batch["image"] = torch.stack([item["image"] for item in good])
    batch["mask"] = torch.stack([item["mask"] for item in good])
    batch["name"] = [item["name"] for item in good]
    if "mask_full" in good[0]:
        batch["mask_full"] = [item["mask_full"] for item in good]
    return batch


def _as_list(sources: ForgerySource | list[ForgerySource] | None) -> list[ForgerySource]:
    if sources is None:
        return []
    return list(sources) if isinstance(sources, (list, tuple)) else [sources]


class ForgeryDataModule(L.LightningDataModule):
    """Train / validation / test / predict splits, each a list of sources.

    Args:
        train, val, test, predict: sources of each split (any ``ForgerySource``).
        image_size: side every image is resized to (aspect squashed; the paper: 1024).
        batch_size: training batch size per device.
        eval_batch_size: batch size of the other splits (default: ``batch_size``).
        num_workers: loader processes per device.
        augmentations: training augmentations; None turns them off.
        pin_memory: pin host memory for faster copies to a GPU.
    """

    def __init__(
        self,
        train: ForgerySource | list[ForgerySource] | None = None,
        val: ForgerySource | list[ForgerySource] | None = None,
        test: ForgerySource | list[ForgerySource] | None = None,
        predict: ForgerySource | list[ForgerySource] | None = None,
        image_size: int = 1024,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        augmentations: Augmentations | None = None,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        self.sources = {
            "train": _as_list(train), "val": _as_list(val), "test": _as_list(test),
            "predict": _as_list(predict),
        }
        self.image_size = image_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.augmentations = augmentations
        self.pin_memory = pin_memory

    def dataset(self, split: str) -> ForgeryDataset:
        """The ``ForgeryDataset`` of a split (raises naming the split when it has no source)."""
        if not self.sources[split]:
            raise ValueError(f"the data module has no '{split}' sources: set data.{split} in the config")
        training = split == "train"
        return ForgeryDataset(
            self.sources[split], self.image_size,
            augment=self.augmentations if training else None, keep_full_mask=not training,
        )

    def _loader(self, split: str) -> DataLoader:
        training = split == "train"
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size if training else self.eval_batch_size,
            shuffle=training,
            drop_last=training,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0 and training,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
