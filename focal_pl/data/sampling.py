"""Deterministic, resumable training order for map-style sources.

The order of an epoch is a permutation seeded by (seed, epoch), sharded over DDP ranks with equal
counts (a ``DistributedSampler``, so Lightning leaves it in place); every index carries its epoch,
so that an item's augmentation can be seeded by (seed, epoch, index) whatever worker loads it. The
loader keeps how many batches it served: Lightning saves that in checkpoints and a resumed run
skips exactly those, so an interrupted run continues as an unbroken one would.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A loader worker's ``worker_init_fn``: SIGINT and SIGTERM are the training process's to handle
    (it stops at a step boundary, then ends its workers). Sent to the job's process group, as
    Ctrl-C and ``timeout`` do, or to every process of a job, as SLURM does, they would otherwise
    kill the workers and crash the run mid-step.

    The worker leaves the job's process group (group signals miss it) and, where the platform tells
    senders apart, ignores SIGTERMs from others than its parent (best effort: a thread started before
    this function may still take one). Its parent's SIGTERM always ends it: the loader and
    ``multiprocessing`` end lingering workers that way and then wait, so ignoring it would hang."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
    except OSError:  # a session leader, or not allowed: the group's signals still reach it
        pass
    if hasattr(signal, "sigwaitinfo"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started later inherit it
        threading.Thread(target=_end_on_parents_sigterm, args=(os.getppid(),), daemon=True,
                         name="focal-pl-sigterm").start()


def _end_on_parents_sigterm(parent: int) -> None:
    """Wait for SIGTERMs; end the process on one sent by ``parent`` (or once orphaned), ignore others."""
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent or os.getppid() != parent:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # this thread only
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # ends as a SIGTERM would have
            os._exit(128 + signal.SIGTERM)  # if a handler was set after all


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

    ``state_dict`` / ``load_state_dict`` make Lightning store the position in checkpoints; the
    batches are skipped only in the epoch the position belongs to (a checkpoint taken at an epoch's
    last batch resumes with the whole next epoch).
    """

    def __init__(self, dataset: Dataset, sampler: ResumableSampler, **kwargs: Any) -> None:
        kwargs.setdefault("worker_init_fn", ignore_stop_signals)
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.served = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches served) from a checkpoint

    def __iter__(self):
        sampler = self.sampler
        epoch, served = self._resume or (sampler.epoch, 0)
        self._resume = None
        self.served = served if epoch == sampler.epoch else 0
        sampler.skip = self.served * self.batch_size
        for batch in super().__iter__():
            self.served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "served": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self._resume = (int(state["epoch"]), int(state["served"]))
