"""Callbacks that break a fit the way a cluster does: a kill in the middle of a checkpoint write, a
disk that fills up, a write error."""

import errno
import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class _Breaking:
    """A file object that lets ``keep`` bytes through, then kills its process or raises ENOSPC."""

    def __init__(self, handle, mode: str, keep: int = 2048) -> None:
        self.handle, self.mode, self.left = handle, mode, keep

    def write(self, data) -> int:
        if len(data) >= self.left:
            self.handle.write(bytes(data[: self.left]))
            self.handle.flush()
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.left -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


class BreakWrite(Callback):
    """The ``nth`` write of a checkpoint named ``name`` breaks halfway: ``kill`` (SIGKILL) or
    ``enospc`` (a full disk)."""

    def __init__(self, name: str = "last.ckpt", nth: int = 2, mode: str = "kill") -> None:
        self.name, self.nth, self.mode = name, nth, mode
        self.seen = 0

    def setup(self, trainer, pl_module, stage):
        import focal_pl.files.checkpoint as checkpoint_file

        original = checkpoint_file._open_for_write

        def opener(handle, target: Path):
            handle = original(handle, target)
            if target.name == self.name:
                self.seen += 1
                if self.seen == self.nth:
                    return _Breaking(handle, self.mode)
            return handle

        checkpoint_file._open_for_write = opener


class FillDisk(Callback):
    """At the start of step ``step``, fill the filesystem of the run folder to the last byte."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step != self.step:
            return
        filler = Path(trainer.checkpoint_callback.dirpath).parent / "filler.bin"
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while os.write(descriptor, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(descriptor)


class RaiseAtStep(Callback):
    """A crash: raises ``RuntimeError(message)`` at the start of the batch after ``step`` steps."""

    def __init__(self, step: int, message: str = "a bug in a callback") -> None:
        self.step, self.message = step, message

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError(self.message)
