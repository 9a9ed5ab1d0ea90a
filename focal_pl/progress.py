"""Progress for log files: a line every few steps and one per validation, instead of a progress bar."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class LogProgress(Callback):
    """Progress for log files: one line every ``every`` training steps (step, loss, speed) instead
    of a progress bar redrawn at every step (a line per step once stdout is not a terminal)."""

    def __init__(self, every: int = 50) -> None:
        self.every = max(1, every)
        self._started = 0.0
        self._start_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        self._started, self._start_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        import time

        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every:
            return
        rate = (step - self._start_step) / max(time.perf_counter() - self._started, 1e-9)
        loss = trainer.callback_metrics.get("train/loss")
        total = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        shown = f" loss {float(loss):.4f}" if loss is not None else ""
        print(f"step {step}{total}{shown} ({rate:.2f} steps/s)", flush=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        score = trainer.callback_metrics.get("val/score")
        f1 = trainer.callback_metrics.get("val/f1")
        step = pl_module.model_step() if hasattr(pl_module, "model_step") else trainer.global_step
        if score is not None and f1 is not None:
            print(f"validation at step {step}: score {float(score):.4f} (macro F1 {float(f1):.4f})", flush=True)
