"""A validation split held out of the training sources (the official code validates on 1000 images
of its training mix, never on a test set): the same distinct items never reach training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from focal_pl.data.sources import ForgerySource, Sample, distinct_items


class SourceView(ForgerySource):
    """Some items of a source, by index (the items of the source keep their names and files)."""

    def __init__(self, source: ForgerySource, indices: list[int], role: str) -> None:
        self.source = source
        self.indices = indices
        self.name = getattr(source, "name", type(source).__name__)
        self.role = role

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Sample:
        return self.source.load(self.indices[index])

    def describe(self, index: int) -> str:
        return self.source.describe(self.indices[index])

    def where(self) -> str:
        return getattr(self.source, "where", lambda: "")()


def hold_out(sources: list[ForgerySource], size: int, seed: int = 0) -> tuple[list[ForgerySource], list[ForgerySource]]:
    """(training views, validation views): ``size`` distinct items drawn at random (seeded) over
    all training sources, in proportion to their distinct sizes, and every repeat of them
    removed from training."""
    counts = [distinct_items(s) for s in sources]
    train, val = [], []
    for source, count, picked in zip(sources, counts, draw_held_out(counts, size, seed, "the training sources")):
        held = set(picked.tolist())
        if held:
            val.append(SourceView(source, sorted(held), "validation"))
        keep = [i for i in range(len(source)) if i % count not in held]
        train.append(source if not held else SourceView(source, keep, "training"))
    return train, val


def draw_held_out(counts: Sequence[int], size: int, seed: int, holders: str) -> list[np.ndarray]:
    """``size`` distinct items drawn at random (seeded) over parts of ``counts`` items: the sorted
    numbers of the items drawn in each part. ``holders`` names the parts in the error message."""
    total = sum(counts)
    if not 0 < size < total:
        raise ValueError(f"val_split must be between 1 and {total - 1} ({holders} hold {total} distinct "
                         f"items), got {size}")
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [chosen[(chosen >= a) & (chosen < b)] - a for a, b in zip(starts[:-1], starts[1:])]
