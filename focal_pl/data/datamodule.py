"""ForgeryDataModule: sources -> augmented, resized tensors in batches, bad items skipped and counted."""

from __future__ import annotations

import bisect
import functools
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from focal_pl.data.degradations import Degradation, robustness_grid
from focal_pl.data.sampling import ResumableDataLoader, ResumableSampler, decode_index, ignore_stop_signals
from focal_pl.data.batch import collate
from focal_pl.data.items import Item, prepare_item, problem, skipped_item
from focal_pl.data.shards import StreamItem, StreamingShards
from focal_pl.data.overlap import find_overlaps
from focal_pl.data.sources import ForgerySource
from focal_pl.data.splits import hold_out
from focal_pl.data.transforms import Augmentations

log = logging.getLogger(__name__)


class ForgeryDataset(Dataset):
    """One split: concatenated sources, each item augmented (training) and resized to ``image_size``.

    An item whose source raises (corrupt file, missing mask, ...) is left out with its file and
    reason in the batch's ``problems`` (the training process warns once per file and counts them).
    In training another item takes its place, so that batches keep their size (and DDP ranks their
    step count); in evaluation it is left out.
    Evaluation items also carry the mask at the image's own resolution (``mask_full``), since the
    metrics are scored there.
    """

    def __init__(
        self,
        sources: list[ForgerySource],
        image_size: int | None,
        augment: Augmentations | None = None,
        keep_full_mask: bool = False,
        substitute: bool = False,
        max_substitutes: int = 16,
        degradation: Degradation | None = None,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise ValueError("a split needs at least one source")
        self.sources = sources
        self.data = ConcatDataset(sources)
        self.image_size = image_size
        self.augment = augment
        self.keep_full_mask = keep_full_mask
        self.substitute = substitute
        self.max_substitutes = max_substitutes
        self.degradation = degradation
        self.seed = seed

    def __len__(self) -> int:
        return len(self.data)

    def _locate(self, index: int) -> tuple[ForgerySource, int]:
        which = bisect.bisect_right(self.data.cumulative_sizes, index)
        start = self.data.cumulative_sizes[which - 1] if which else 0
        return self.sources[which], index - start

    def _read(self, index: int, epoch: int = 0) -> Item:
        source, local = self._locate(index)
        try:
            image, mask, meta = source.load(local)
            if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
                raise ValueError(
                    f"image {image.shape} and mask {mask.shape} do not form an H x W x 3 / H x W pair"
                )
        except Exception as error:  # a bad item must not stop a run hours in: report and skip
            raise _Skipped(problem(source.describe(local), error)) from error
        name = str(meta.get("name", source.describe(local)))
        seed = hash((self.seed, epoch, index)) if self.augment is not None else None
        return prepare_item(image, mask, name, self.image_size, self.augment, self.keep_full_mask,
                            self.degradation, bool(meta.get("truth", True)), seed)

    def __getitem__(self, index: int) -> Item:
        epoch, index = decode_index(index, len(self))  # ResumableSampler's indices carry the epoch
        tries = 1 + (self.max_substitutes if self.substitute else 0)
        problems: list[tuple[str, str]] = []
        for attempt in range(tries):
            candidate = index if attempt == 0 else (index * 7919 + attempt * 104729) % len(self)
            try:
                item = self._read(candidate, epoch)
            except _Skipped as skipped:
                problems.append(skipped.args[0])
                continue
            item.skipped, item.problems = len(problems), problems
            return item
        return skipped_item(problems)


class _Skipped(Exception):
    """An item was left out; ``args[0]`` is its ``(where, reason)``."""


def set_names(sources: list[ForgerySource]) -> list[str]:
    """A unique, readable name per source (its reader name, plus its folder when names repeat)."""
    base = [getattr(s, "name", type(s).__name__) for s in sources]
    names = []
    for source, name in zip(sources, base):
        if base.count(name) > 1:
            where = source.where() if hasattr(source, "where") else ""
            name = f"{name}:{Path(where.split(',')[0].split(' ')[-1]).name or len(names)}"
        names.append(name)
    return names


def _as_list(sources: ForgerySource | list[ForgerySource] | None) -> list[ForgerySource]:
    if sources is None:
        return []
    return list(sources) if isinstance(sources, (list, tuple)) else [sources]


def default_workers() -> int:
    """Loader processes for a device when none are given: the cores this process may use, less
    one for the training process, at most 8 (2 cores: 1 worker; a 16-core node: 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores - 1))


class ForgeryDataModule(L.LightningDataModule):
    """Train / validation / test / predict splits, each a list of sources.

    Args:
        train, val, test, predict: sources of each split (any ``ForgerySource``); ``train`` may
            also be ``StreamingShards`` (alone, or as a one-item list): shard folders mixed by an
            exact weighted schedule, with equal batch counts on every DDP rank and mid-epoch
            resumption from a checkpoint.
        image_size: side every image is resized to (aspect squashed; the paper: 1024).
        batch_size: training batch size per device.
        eval_batch_size: batch size of the other splits (default: ``batch_size``).
        num_workers: loader processes per device; None: one less than the CPU cores this process
            may use (the training process needs one), at most 8.
        augmentations: training augmentations; None turns them off.
        pin_memory: pin host memory for faster copies to a GPU.
        test_degradations: degrade the test images, e.g. ``[none, jpeg:70, resize:0.5]``; every
            test source is evaluated under each (one test loader per source and degradation).
        robustness: the whole robustness grid (JPEG 100-50, resize 1.0-0.5, blur, noise, the
            social-network chain) instead of ``test_degradations``.
        val_split: hold this many distinct items of the training sources out as the validation
            split (the official code validates on 1000 training-mix images), instead of ``val``;
            model selection then never sees a test set. Seeded, so every rank and every resumed run
            holds out the same items.
        native_resolution: test and predict look at each image at its own resolution, not squashed
            to ``image_size``: the extractor sees overlapping tiles of ``image_size`` pixels, stitched
            into one feature map per image (one image per batch). Validation stays at ``image_size``.
    """

    def __init__(
        self,
        train: StreamingShards | ForgerySource | list[ForgerySource | StreamingShards] | None = None,
        val: ForgerySource | list[ForgerySource] | None = None,
        test: ForgerySource | list[ForgerySource] | None = None,
        predict: ForgerySource | list[ForgerySource] | None = None,
        image_size: int = 1024,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        augmentations: Augmentations | None = None,
        pin_memory: bool = True,
        test_degradations: list[str] | None = None,
        robustness: bool = False,
        val_split: int | None = None,
        native_resolution: bool = False,
    ) -> None:
        super().__init__()
        for name, value, least in (("image_size", image_size, 1), ("batch_size", batch_size, 1),
                                   ("eval_batch_size", eval_batch_size, 1), ("num_workers", num_workers, 0)):
            if value is not None and value < least:
                raise ValueError(f"{name} must be >= {least}, got {value}")
        listed = _as_list(train)
        streams = [s for s in listed if isinstance(s, StreamingShards)]
        if streams and len(listed) > 1:
            raise ValueError("train: a StreamingShards stream must be the only training source (mix its shard "
                             "folders inside it with weights or repeats)")
        self.stream = streams[0] if streams else None
        self.sources = {
            "train": [] if self.stream else _as_list(train), "val": _as_list(val), "test": _as_list(test),
            "predict": _as_list(predict),
        }
        self.image_size = image_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.augmentations = augmentations
        self.pin_memory = pin_memory
        specs = robustness_grid() if robustness else (test_degradations or ["none"])
        self.degradations = [Degradation.parse(spec) for spec in specs]
        self.val_split = val_split
        self.native_resolution = native_resolution
        if val_split is not None:
            if self.sources["val"]:
                raise ValueError("val_split holds validation items out of train; set it or "
                                 "val, not both")
            if self.stream is None:
                self.sources["train"], self.sources["val"] = hold_out(self.sources["train"], val_split)
            else:  # held out of every epoch of the shard stream, validated through random access
                self.sources["val"] = self.stream.hold_out(val_split)

    def check(self, stage: str) -> None:
        """Raise ``ValueError`` naming the split and source when a source the stage reads holds no
        item (an empty folder), before anything runs: the CLI turns it into one line."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}[stage]
        for split in splits:
            if split == "train" and self.stream is not None:
                continue
            if not self.sources[split] and split != "val":
                raise ValueError(f"{split}: no sources; set data.{split} in the config")
            for source in self.sources[split]:
                try:
                    count = len(source)
                except (ValueError, OSError) as error:
                    raise ValueError(f"{split}: {error}") from error
                if count == 0:
                    name = getattr(source, "name", type(source).__name__)
                    where = source.where() if hasattr(source, "where") else name
                    raise ValueError(f"{split}: {name} holds no item ({where})")

    def compare_with(self, trained_on: dict[str, list[Any]], origin: str) -> None:
        """The data the model under test was trained and validated on (``{"train": [...], "val": [...]}``,
        e.g. built from its run's saved config), which the test sets are checked against instead of
        this data module's own ``train`` / ``val``; ``origin`` says where it came from."""
        self.trained_on, self.trained_origin = trained_on, origin

    def setup(self, stage: str) -> None:
        """Before testing: warn, naming the files, when a test set shares images with the data the
        model was trained or validated on (by path or by content; folders and shards)."""
        if stage == "test" and self.sources["test"]:
            others = getattr(self, "trained_on", None)
            if others is None:
                own = {"train": [self.stream] if self.stream is not None else self.sources["train"],
                       "val": self.sources["val"]}
                others = {k: v for k, v in own.items() if v}
            else:
                log.info("test sets checked for overlap with the training data of %s", self.trained_origin)
            overlaps = find_overlaps(self.sources["test"], others)
            for test_file, other, how in overlaps[:20]:
                log.warning("test image %s is also in the training data: %s (%s)", test_file, other, how)
            if overlaps:
                log.warning("%d test image(s) overlap the training or validation data; their scores are "
                            "not test scores%s", len({test for test, _, _ in overlaps}),
                            " (first 20 matches listed)" if len(overlaps) > 20 else "")

    @property
    def test_sets(self) -> list[tuple[str, str]]:
        """(data set name, degradation label) of each test loader, in order."""
        names = set_names(self.sources["test"])
        return [(name, d.label) for name in names for d in self.degradations]
    def dataset(self, split: str) -> ForgeryDataset:
        """The ``ForgeryDataset`` of a split (raises naming the split when it has no source)."""
        if not self.sources[split]:
            raise ValueError(f"the data module has no '{split}' sources: set data.{split} in the config")
        training = split == "train"
        return ForgeryDataset(
            self.sources[split], self.image_size,
            augment=self.augmentations if training else None, keep_full_mask=not training,
            substitute=training, seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
        )

    def _native(self, split: str) -> bool:
        return self.native_resolution and split in ("test", "predict")

    def _collate(self, split: str):
        return functools.partial(collate, tile=self.image_size) if self._native(split) else collate

    def _loader(self, split: str) -> DataLoader:
        training = split == "train"
        dataset = self.dataset(split)
        if self._native(split):
            dataset.image_size = None
        return DataLoader(
            dataset,
            batch_size=1 if self._native(split) else self.batch_size if training else self.eval_batch_size,
            shuffle=training,
            drop_last=training,
            num_workers=self.num_workers,
            collate_fn=self._collate(split),
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0 and training, worker_init_fn=ignore_stop_signals,
        )

    def train_dataloader(self) -> DataLoader:
        if self.stream is not None:  # exact weighted schedule, this rank's part, resumable mid-epoch
            trainer = getattr(self, "trainer", None)
            replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
            return self.stream.loader(
                StreamItem(self.image_size, self.augmentations), self.batch_size, self.num_workers, rank=rank,
                replicas=replicas, pin_memory=self.pin_memory and torch.cuda.is_available(),
            )
        dataset = self.dataset("train")
        trainer = getattr(self, "trainer", None)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ResumableSampler(dataset, num_replicas=replicas, rank=rank, seed=dataset.seed)
        return ResumableDataLoader(
            dataset, sampler, batch_size=self.batch_size, drop_last=True, num_workers=self.num_workers,
            collate_fn=collate, pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per test source and degradation, so that each is scored on its own."""
        if not self.sources["test"]:
            raise ValueError("the data module has no 'test' sources: set data.test in the config")
        loaders = []
        for source in self.sources["test"]:
            for degradation in self.degradations:
                dataset = ForgeryDataset([source], None if self._native("test") else self.image_size,
                                         keep_full_mask=True,
                                         degradation=None if degradation.kind == "none" else degradation)
                loaders.append(DataLoader(
                    dataset, batch_size=1 if self._native("test") else self.eval_batch_size, shuffle=False,
                    num_workers=self.num_workers, collate_fn=self._collate("test"),
                    pin_memory=self.pin_memory and torch.cuda.is_available(),
                    worker_init_fn=ignore_stop_signals,
                ))
        return loaders

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
