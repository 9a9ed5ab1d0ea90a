"""The training stream over shard folders: stored samples -> batch items, substitutes for unreadable
ones (batches keep their size, ranks their steps), and the DataLoader that serves a ``MixSchedule``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from focal_pl.files.paths import must_exist
from focal_pl.data.items import Item, prepare_item, problem, skipped_item
from focal_pl.data.shards.reader import ChunkProblem, ShardFolder, ShardSource, decode_sample, sample_name
from focal_pl.data.shards.schedule import MixSchedule, ScheduleSampler
from focal_pl.data.splits import draw_held_out
from focal_pl.data.transforms import Augmentations

log = logging.getLogger("focal_pl.data.shards")  # the package's logger: one name for every shard message


class StreamItem:
    """A stored shard sample -> a batch item (an undecodable one reported and skipped)."""

    def __init__(self, image_size: int, augment: Augmentations | None = None) -> None:
        self.image_size = image_size
        self.augment = augment

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> Item:
        try:
            image, mask, meta = decode_sample(sample)
        except Exception as error:  # noqa: BLE001 - reported by the training process, once per item
            return skipped_item([problem(sample_name(sample), error)])
        return prepare_item(image, mask, meta["name"], self.image_size, self.augment, seed=seed)


class ShardStream:
    """Map-style data set over ``(epoch, position, folder, item)`` keys: reads (verifying each chunk
    when first opened in this process), decodes, augments (seeded by seed, epoch and position).
    An unreadable item is reported in ``problems`` and another takes its place (the same item of
    the next chunks, then of the next folders), so batches keep their size and DDP ranks their steps.
    """

    def __init__(self, folders: list[ShardFolder], transform: StreamItem, seed: int = 0,
                 max_substitutes: int = 16) -> None:
        self.folders = folders
        self.transform = transform
        self.seed = seed
        self.max_substitutes = max_substitutes
        self.length = sum(len(f) for f in folders)
        self.places = [(f, c) for f in range(len(folders)) for c in range(len(folders[f].chunks))]

    def __len__(self) -> int:
        return self.length

    def _candidates(self, folder: int, item: int) -> Iterator[tuple[int, int]]:
        yield folder, item
        chunk, offset = self.folders[folder].locate(item)
        places = self.places
        start = places.index((folder, chunk))
        for step in range(1, min(self.max_substitutes, len(places) - 1) + 1):
            f, c = places[(start + step) % len(places)]
            target = self.folders[f]
            yield f, int(target.starts[c]) + offset % target.chunks[c].items

    def __getitem__(self, key: tuple[int, int, int, int]) -> Item:
        epoch, position, folder, item = key
        problems: list[tuple[str, str]] = []
        for f, candidate in self._candidates(folder, item):
            try:
                sample = self.folders[f].read(candidate)
            except ChunkProblem as bad:
                problems.append((bad.where, bad.reason))
                continue
            seed = hash((self.seed, epoch, position)) if self.transform.augment is not None else None
            result = self.transform(sample, seed)
            if result.usable:
                result.skipped, result.problems = len(problems), problems
                return result
            problems += result.problems
        return skipped_item(problems)


class StreamingShards:
    """Training stream over shard folders, mixed exactly by ``weights`` or ``repeats`` (see
    ``MixSchedule``), decoded in the loader workers.

    Args:
        paths: shard folders (e.g. one per training set).
        weights: shares of an epoch per folder, e.g. size x repeat factor ([200000, 200000, 200000,
            204920, 40200]); default: every item once.
        repeats: instead of weights, how many times each folder's items appear in an epoch (the
            official lists: [1, 1, 1, 40, 20]).
        counts: at most how many distinct items of each folder the mix uses (null: all), a seeded
            draw made once, the same every epoch (the paper's set sizes: [200000, 200000, 200000,
            200000, 5105, 2010]); a folder holding fewer serves all it has, said in one warning line.
        shuffle: shuffle the order each epoch (chunks, items within windows of chunks, folders).
        seed: the order's seed (the same on every rank).
        window: chunks whose items are shuffled together (more: better mixing, more open chunks).
    """

    def __init__(
        self, paths: list[str], weights: list[float] | None = None, repeats: list[int] | None = None,
        shuffle: bool = True, seed: int = 0, window: int = 4, counts: list[int | None] | None = None,
    ) -> None:
        if not paths:
            raise ValueError("StreamingShards needs at least one shard folder")
        for name, values in (("weights", weights), ("repeats", repeats), ("counts", counts)):
            if values is not None and len(values) != len(paths):
                raise ValueError(f"{len(paths)} shard folders but {len(values)} {name}")
        if weights is not None and repeats is not None:
            raise ValueError("StreamingShards takes weights (shares) or repeats (times per item), not both")
        for path in paths:
            must_exist(path, "shard folder", f"{path}: no such shard folder (make it with `focal-pl data shard`)")
        self.paths = [str(Path(p).expanduser()) for p in paths]
        self.weights = weights
        self.repeats = repeats
        self.counts = counts
        self.shuffle = shuffle
        self.seed = seed
        self.window = window
        self._folders: list[ShardFolder] | None = None
        self._short_said: set[str] = set()
        self.held_out: list[np.ndarray] | None = None

    def folders(self) -> list[ShardFolder]:
        """The folders' chunk lists (read once; what was unreadable is logged here, in the training process)."""
        if self._folders is None:
            self._folders = [ShardFolder(p) for p in self.paths]
            for folder in self._folders:
                for where, reason in folder.notes:
                    log.warning("shards: %s: %s", where, reason)
        return self._folders

    def schedule(self) -> MixSchedule:
        schedule = MixSchedule([f.chunk_items() for f in self.folders()], self.weights, self.repeats,
                               seed=self.seed, shuffle=self.shuffle, window=self.window, exclude=self.held_out,
                               counts=self.counts)
        for path, count, size in zip(self.paths, self.counts or [], schedule.sizes):
            if count is not None and size < count and path not in self._short_said:
                self._short_said.add(path)
                log.warning("shards: %s holds %s items for training, fewer than the %s the mix names: all of "
                            "them are used, once each", path, f"{size:,}", f"{count:,}")
        return schedule

    def hold_out(self, size: int, seed: int = 0) -> list[ShardSource]:
        """``size`` distinct items drawn at random (seeded) over all folders, taken out of every
        training epoch, as validation sources (the official code validates on 1000 training-mix
        images). The same items on every rank and in every resumed run."""
        self.held_out = draw_held_out([len(f) for f in self.folders()], size, seed, "the shard folders")
        return [ShardSource(path).subset(items) for path, items in zip(self.paths, self.held_out) if len(items)]

    def loader(self, transform: StreamItem, batch_size: int, num_workers: int, rank: int = 0, replicas: int = 1,
               pin_memory: bool = False):
        """The training DataLoader of rank ``rank`` of ``replicas``: items made by ``transform``
        (a ``StreamItem``), ``batch_size`` per batch, equal batch counts on every rank; its
        ``state_dict`` resumes mid-epoch."""
        from focal_pl.data.batch import collate
        from focal_pl.data.sampling import ResumableDataLoader

        dataset = ShardStream(self.folders(), transform, seed=self.seed)
        sampler = ScheduleSampler(dataset, self.schedule(), replicas, rank, batch_size)
        return ResumableDataLoader(
            dataset, sampler, batch_size=batch_size, drop_last=True, num_workers=num_workers, collate_fn=collate,
            pin_memory=pin_memory, persistent_workers=num_workers > 0,
        )
