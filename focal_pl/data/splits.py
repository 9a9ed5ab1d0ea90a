"""A validation split held out of the training sources (the official code validates on 1000 images
of its training mix, never on a test set): the same distinct items never reach training."""

from __future__ import annotations

import numpy as np

from focal_pl.data.sources import FileSource, ForgerySource, Sample


def distinct_items(source: ForgerySource) -> int:
    """Items of a source without its ``repeat`` (a repeated set is held out once, not per repeat)."""
    return len(source.entries) if isinstance(source, FileSource) else len(source)


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
    total = sum(counts)
    if not 0 < size < total:
        raise ValueError(f"data.val_split must be between 1 and {total - 1} (the training sources hold "
                         f"{total} distinct items), got {size}")
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False))
    train, val, start = [], [], 0
    for source, count in zip(sources, counts):
        picked = chosen[(chosen >= start) & (chosen < start + count)] - start
        start += count
        held = set(picked.tolist())
        if held:
            val.append(SourceView(source, sorted(held), "validation"))
        keep = [i for i in range(len(source)) if i % count not in held]
        train.append(source if not held else SourceView(source, keep, "training"))
    return train, val
