"""Progress for log files: a line every few steps and one per validation, instead of a progress bar."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from focal_pl.training.runs import model_step


class LogProgress(Callback):
    """Progress for log files: one line every ``every`` training steps (step, loss, speed) instead
    of a progress bar redrawn at every step (a line per step once stdout is not a terminal); and,
    in a validation, a line when it starts and one every ``validation_seconds`` (the paper configs'
    untrained validation of 1000 images takes minutes on a CPU)."""

    def __init__(self, every: int = 50, validation_seconds: float = 30.0) -> None:
        self.every = max(1, every)
        self.validation_seconds = validation_seconds
        self._started = 0.0
        self._start_step = 0
        self._validation: tuple[float, float] = (0.0, 0.0)  # its start, the last line's time

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        now = time.perf_counter()
        self._validation = (now, now)
        if not trainer.is_global_zero or not trainer.sanity_checking:  # later ones end with a line of their own
            return
        batches = sum(int(n) for n in trainer.num_sanity_val_batches)
        print(f"validating the untrained model: {batches} batches, clustering every image "
              "(--trainer.num_sanity_val_steps 0 skips it)", flush=True)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        import time

        started, last = self._validation
        now = time.perf_counter()
        if not trainer.is_global_zero or now - last < self.validation_seconds:
            return
        self._validation = (started, now)
        rate = (batch_idx + 1) / max(now - started, 1e-9)
        print(f"  validation batch {batch_idx + 1} ({rate:.2f} batches/s)", flush=True)

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
        step = model_step(trainer, pl_module)
        if score is not None and f1 is not None:
            print(f"validation at step {step}: score {float(score):.4f} (macro F1 {float(f1):.4f})", flush=True)
