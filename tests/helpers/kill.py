"""A callback that signals its own process, as a crash, an OOM killer, a scheduler or Ctrl-C would."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """Sends ``signal`` (SIGKILL by default; SIGTERM, SIGINT) to its own process at the start of the
    batch after ``step`` optimizer steps."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step = step
        self.signal = signal

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))
