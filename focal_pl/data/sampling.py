"""Deterministic, resumable training order for map-style sources.

The order of an epoch is a permutation seeded by (seed, epoch), sharded over DDP ranks with equal
counts (a ``DistributedSampler``, so Lightning leaves it in place); every index carries its epoch,
so that an item's augmentation can be seeded by (seed, epoch, index) whatever worker loads it. The
loader keeps how many batches it served: Lightning saves that in checkpoints and a resumed run
skips exactly those, so an interrupted run continues as an unbroken one would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` whose indices encode the epoch (``epoch * len + index``) and which
    can skip the first items of an epoch (to resume mid-epoch)."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=True)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * len(self.dataset)
        indices = list(super().__iter__())[self.skip :]
        self.skip = 0
        return iter([base + i for i in indices])


def decode_index(index: int, length: int) -> tuple[int, int]:
    """(epoch, index into the data set) of an index from ``ResumableSampler``."""
    return divmod(index, length)


class ResumableDataLoader(DataLoader):
    """A DataLoader that counts the batches it served this epoch and can resume after them.

    ``state_dict`` / ``load_state_dict`` make Lightning store the position in checkpoints.
    """

    def __init__(self, dataset: Dataset, sampler: ResumableSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.served = 0
        self._epoch_served_for = -1

    def __iter__(self):
        sampler: ResumableSampler = self.sampler
        if self._epoch_served_for != sampler.epoch:
            self.served = sampler.skip // self.batch_size if sampler.skip else 0
            self._epoch_served_for = sampler.epoch
        for batch in super().__iter__():
            self.served += 1
            yield batch
        self._epoch_served_for = -1  # the epoch is complete

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "served": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip = state["served"] * self.batch_size
