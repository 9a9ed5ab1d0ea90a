"""A callback that signals its own process, as a crash, an OOM killer, a scheduler or Ctrl-C would."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """Sends ``signal`` (SIGKILL by default; SIGTERM, SIGINT) at the start of the batch after
    ``step`` optimizer steps: to its own process, or with ``group`` to its whole process group
    (loader workers included, as ``timeout``, SLURM and a terminal's Ctrl-C do). ``during``:
    ``validation`` sends it in the middle of the first validation after ``step`` instead, ``sanity``
    in the middle of the untrained validation;
    ``times`` sends it that many times (a second Ctrl-C); ``rank``: only that DDP rank sends it."""

    def __init__(self, step: int, signal: str = "SIGKILL", group: bool = False, during: str = "train",
                 times: int = 1, rank: int | None = None) -> None:
        self.rank = rank
        self.step = step
        self.signal = signal
        self.group = group
        self.during = during
        self.times = times
        self._sent = False

    def setup(self, trainer, pl_module, stage):
        self._mine = self.rank is None or trainer.global_rank == self.rank

    def _send(self) -> None:
        if self._sent or not getattr(self, "_mine", True):
            return
        self._sent = True
        for _ in range(self.times):
            if self.group:
                os.killpg(os.getpgid(0), getattr(signal, self.signal))
            else:
                os.kill(os.getpid(), getattr(signal, self.signal))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.during == "train" and trainer.global_step == self.step:
            self._send()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and (trainer.sanity_checking if self.during == "sanity" else
                               self.during == "validation" and trainer.global_step >= self.step):
            self._send()
