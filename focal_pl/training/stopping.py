"""Stopping a fit on SIGINT / SIGTERM at a point it can resume from exactly.

Python's Ctrl-C raises wherever the program is (inside a training step, inside the optimizer's
update), and Lightning stops on SIGTERM only at an epoch's end. Here the first signal only asks for
a stop; ``RunCheckpoint`` stops the fit at the next step boundary (or after the validation under
way), with ``last.ckpt`` saved there, so the resumed run is the unbroken one. A second Ctrl-C stops
at once (``last.ckpt`` then stays at its previous, whole state). Under DDP the request reaches
every rank through one tiny all-reduce per step.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import lightning as L
import torch

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FitStopped(BaseException):
    """A fit stopped on a signal at a resumable point (a ``BaseException``, as ``KeyboardInterrupt``:
    ``except Exception`` does not swallow it). ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        saved = f"; last.ckpt saved at step {step}: {checkpoint}" if checkpoint else " (nothing to save yet)"
        super().__init__(f"stopped by {name} at step {step}{saved}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Signal handlers that record a stop request instead of raising (installed for the fit only).

    The first SIGINT or SIGTERM sets ``signum``; a second SIGINT raises ``KeyboardInterrupt`` at
    once. ``agree_max(trainer, request.signum)`` is the request as every rank sees it."""

    def __init__(self) -> None:
        self.signum = 0
        self._before: dict[int, object] = {}
        self._installed = False

    @staticmethod
    def _main_thread() -> bool:
        return threading.current_thread() is threading.main_thread()

    def remember(self) -> None:
        """Note the handlers to give back at the end (call before Lightning installs its own)."""
        if self._main_thread() and not self._installed:
            self._before = {signum: signal.getsignal(signum) for signum in SIGNALS}
            self.signum = 0

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; a no-op elsewhere, and when installed)."""
        if self._installed or not self._main_thread():
            return
        if not self._before:
            self.remember()
        for signum in SIGNALS:
            signal.signal(signum, self._handle)
        self._installed = True

    def uninstall(self) -> None:
        """Give the signals back to the handlers they had when ``remember`` ran."""
        if not self._installed or not self._main_thread():
            return
        for signum, handler in self._before.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum and signum == signal.SIGINT:
            os.write(2, f"\nfocal-pl: second {name}: stopping now\n".encode())
            raise KeyboardInterrupt
        if not self.signum:
            self.signum = signum
            again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
            os.write(2, f"\nfocal-pl: {name} received: stopping at the next step boundary with last.ckpt "
                        f"saved{again}\n".encode())



def agree_max(trainer: L.Trainer, *values: int) -> list[int]:
    """Each value's maximum over the DDP ranks (a collective call; the values themselves on one
    process): how every rank learns of a signal that reached one of them."""
    if trainer.world_size <= 1:
        return list(values)
    flags = torch.tensor([float(v) for v in values], device=trainer.strategy.root_device)
    return [int(v) for v in trainer.strategy.reduce(flags, reduce_op="max").tolist()]
