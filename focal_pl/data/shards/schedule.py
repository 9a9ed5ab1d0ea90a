"""The weighted epoch schedule: each folder's exact share of an epoch, a seeded order that is a function
of (seed, epoch) alone, and each DDP rank's equal part of it (so resumed and multi-GPU runs serve the same)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import DistributedSampler


def exact_quotas(sizes: Sequence[int], weights: Sequence[float] | None = None,
                 repeats: Sequence[int] | None = None) -> list[int]:
    """Items of each folder in one epoch.

    ``repeats``: every item ``r`` times. ``weights``: shares of the epoch; the epoch is the shortest
    in which every item of every folder appears at least once at these shares (with the paper's
    weights, size x repeat factor, that is exactly the repeat factors); largest remainders make the
    counts add up. Neither: every item once.
    """
    if repeats is not None and weights is not None:
        raise ValueError("give either weights (shares of an epoch) or repeats (times per item), not both")
    if repeats is not None:
        if len(repeats) != len(sizes) or any(int(r) != r or r < 1 for r in repeats):
            raise ValueError(f"repeats must be {len(sizes)} whole numbers >= 1, got {list(repeats)}")
        return [int(n) * int(r) for n, r in zip(sizes, repeats)]
    if weights is None:
        return [int(n) for n in sizes]
    if len(weights) != len(sizes) or any(w <= 0 for w in weights):
        raise ValueError(f"weights must be {len(sizes)} positive numbers, got {list(weights)}")
    total_weight = float(sum(weights))
    length = max(math.ceil(n * total_weight / w - 1e-9) for n, w in zip(sizes, weights))
    ideal = [length * w / total_weight for w in weights]
    quotas = [math.floor(x + 1e-9) for x in ideal]
    for which in sorted(range(len(sizes)), key=lambda i: quotas[i] - ideal[i])[: length - sum(quotas)]:
        quotas[which] += 1
    return quotas


class MixSchedule:
    """The exact, seeded order of an epoch over shard folders, and each DDP rank's part of it.

    Each folder contributes exactly its quota (``exact_quotas``): whole passes over its items plus,
    for a fractional share, a seeded subset. A folder's stream visits its chunks in a seeded order,
    items shuffled within windows of ``window`` chunks; the folders' streams are interleaved by a
    seeded permutation of their labels, so every stretch of the epoch holds the folders at their
    shares. The epoch is padded to a multiple of ranks x batch size with its own first positions,
    and rank ``r`` takes the ``r``-th contiguous part: equal batch counts, the union of all ranks is
    the whole epoch, and each rank reads about 1/ranks of the chunks (each verified once per
    process). Everything is a function of (seed, epoch): a resumed run serves what an unbroken
    one would have.
    """

    def __init__(self, chunk_items: Sequence[Sequence[int]], weights: Sequence[float] | None = None,
                 repeats: Sequence[int] | None = None, seed: int = 0, shuffle: bool = True, window: int = 4,
                 exclude: Sequence[Sequence[int]] | None = None, counts: Sequence[int | None] | None = None) -> None:
        self.chunk_items = [np.asarray(c, dtype=np.int64) for c in chunk_items]
        # the items each folder may serve (None: all of them); ``exclude`` holds a validation split out
        self.allowed: list[np.ndarray | None] = [
            None if exclude is None or not len(exclude[f])
            else np.setdiff1d(np.arange(int(c.sum()), dtype=np.int64), np.asarray(exclude[f], dtype=np.int64))
            for f, c in enumerate(self.chunk_items)]
        self.seed = int(seed) % 2**63
        if counts is not None:
            self.allowed = self._capped(counts)
        self.sizes = [int(c.sum()) if a is None else len(a) for c, a in zip(self.chunk_items, self.allowed)]
        if not any(self.sizes):
            raise ValueError("the shard folders hold no item")
        if 0 in self.sizes:
            empty = [i for i, n in enumerate(self.sizes) if n == 0]
            raise ValueError(f"shard folder(s) {empty} hold no item; leave them out of the mix")
        self.quotas = exact_quotas(self.sizes, weights, repeats)
        self.shuffle = shuffle
        self.window = max(1, window)
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None

    def _capped(self, counts: Sequence[int | None]) -> list[np.ndarray | None]:
        """Each folder's items cut to at most ``counts[f]`` distinct ones (None: all), a seeded draw made
        once (the same items every epoch, a fixed set as a data set is); a folder holding fewer keeps all."""
        if len(counts) != len(self.chunk_items) or any(c is not None and (int(c) != c or c < 1) for c in counts):
            raise ValueError(f"counts must be {len(self.chunk_items)} whole numbers >= 1 or null, got {list(counts)}")
        capped = []
        for f, (count, pool) in enumerate(zip(counts, self.allowed)):
            size = int(self.chunk_items[f].sum()) if pool is None else len(pool)
            if count is None or count >= size:
                capped.append(pool)
                continue
            chosen = np.sort(self._rng(-2 % 2**32, f).choice(size, int(count), replace=False))
            capped.append(chosen if pool is None else pool[chosen])
        return capped

    def __len__(self) -> int:
        return sum(self.quotas)

    def padded_length(self, replicas: int, batch_size: int) -> int:
        unit = replicas * batch_size
        return -(-len(self) // unit) * unit

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def _visits(self, folder: int, members: np.ndarray | None, rng: np.random.Generator | None) -> np.ndarray:
        """One pass over ``folder`` (or over ``members``, sorted item numbers), chunk by chunk."""
        starts = np.concatenate([[0], np.cumsum(self.chunk_items[folder])])
        members = self.allowed[folder] if members is None else members
        if members is None:
            groups = [np.arange(starts[c], starts[c + 1]) for c in range(len(starts) - 1)]
        else:
            cut = np.searchsorted(members, starts[1:-1])
            groups = np.split(members, cut)
        if rng is None:
            return np.concatenate(groups)
        groups = [groups[c] for c in rng.permutation(len(groups))]
        windows = [np.concatenate(groups[i : i + self.window]) for i in range(0, len(groups), self.window)]
        for block in windows:
            rng.shuffle(block)
        return np.concatenate(windows)

    def _stream(self, folder: int, epoch: int) -> np.ndarray:
        passes, rest = divmod(self.quotas[folder], self.sizes[folder])
        pieces = []
        for number in range(passes):
            pieces.append(self._visits(folder, None, self._rng(epoch, folder, number) if self.shuffle else None))
        if rest:
            rng = self._rng(epoch, folder, passes)
            pool = self.allowed[folder]
            chosen = rng.choice(self.sizes[folder], rest, replace=False)
            members = np.sort(chosen if pool is None else pool[chosen])
            pieces.append(self._visits(folder, members, rng if self.shuffle else None))
        return np.concatenate(pieces)

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(folder, item) of every position of the epoch, before padding."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1], self._cached[2]
        counts = np.asarray(self.quotas)
        if self.shuffle:
            labels = np.repeat(np.arange(len(counts), dtype=np.int16), counts)
            self._rng(epoch, -1 % 2**32).shuffle(labels)
        else:  # evenly spread: the k-th item of a folder at (k + 1/2) / quota of the epoch
            spots = np.concatenate([(np.arange(n) + 0.5) / n for n in counts])
            labels = np.repeat(np.arange(len(counts), dtype=np.int16), counts)[np.argsort(spots, kind="stable")]
        items = np.empty(len(labels), dtype=np.int64)
        for folder in range(len(counts)):
            items[labels == folder] = self._stream(folder, epoch)
        self._cached = (epoch, labels, items)
        return labels, items

    def rank_positions(self, replicas: int, rank: int, batch_size: int) -> np.ndarray:
        """Positions (into the padded epoch) that rank ``rank`` serves, in order."""
        share = self.padded_length(replicas, batch_size) // replicas
        return np.arange(rank * share, (rank + 1) * share, dtype=np.int64)

    def keys(self, epoch: int, replicas: int = 1, rank: int = 0, batch_size: int = 1,
             skip: int = 0) -> Iterator[tuple[int, int, int, int]]:
        """``(epoch, position, folder, item)`` of each item rank ``rank`` serves, after ``skip`` items."""
        labels, items = self.order(epoch)
        positions = self.rank_positions(replicas, rank, batch_size)[skip:]
        wrapped = positions % len(labels)
        for position, folder, item in zip(positions.tolist(), labels[wrapped].tolist(), items[wrapped].tolist()):
            yield epoch, position, folder, item


class ScheduleSampler(DistributedSampler):
    """Serves one rank's part of a ``MixSchedule`` epoch: a ``DistributedSampler`` (so that Lightning
    leaves it in place) with ``skip``, which ``ResumableDataLoader`` sets to resume mid-epoch."""

    def __init__(self, dataset, schedule: MixSchedule, num_replicas: int, rank: int, batch_size: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=True)
        self.schedule = schedule
        self.batch_size = batch_size
        self.skip = 0

    def __len__(self) -> int:
        return self.schedule.padded_length(self.num_replicas, self.batch_size) // self.num_replicas

    def __iter__(self):
        skip, self.skip = self.skip, 0
        return self.schedule.keys(self.epoch, self.num_replicas, self.rank, self.batch_size, skip)
