"""Progress people expect: on a terminal, Lightning's bars with the fit's bar counting the whole
budget (its ETA is the run's end, not the epoch's); in a log file, a line every few steps and every
half minute of an evaluation, each with its rate and ETA (``LogProgress``)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from focal_pl.data.progress import LINE_SECONDS, eta
from focal_pl.training.runs import model_step

SCORE = "score = (macro F1 + IoU) / 2, what selects the best checkpoint"  # said where a score is printed


class RunProgressBar(TQDMProgressBar):
    """Lightning's progress bars, the fit's counting optimizer steps to the run's ``max_steps`` (the
    budget in images, as steps), so its ETA is the end of the run and not of an epoch."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if trainer.max_steps and trainer.max_steps > 0:
            bar = self.train_progress_bar
            bar.reset(total=trainer.max_steps)
            bar.n = trainer.global_step
            bar.set_description(f"Steps (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not (trainer.max_steps and trainer.max_steps > 0):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        if bar is not None and not bar.disable:
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar
        return None


class LogProgress(Callback):
    """Progress for log files: one line every ``every`` training steps (step of the budget, loss,
    speed, ETA to the run's end) instead of a progress bar redrawn at every step; and in a
    validation, test or predict, a line when it starts and one every ``evaluation_seconds`` with its
    batches, speed and ETA (the paper configs' untrained validation of 1000 images takes minutes on
    a CPU)."""

    def __init__(self, every: int = 50, evaluation_seconds: float = LINE_SECONDS) -> None:
        self.every = max(1, every)
        self.evaluation_seconds = evaluation_seconds
        self._started = 0.0
        self._start_step = 0
        self._evaluation: tuple[float, float] = (0.0, 0.0)  # its start, the last line's time

    # ---------------------------------------------------------------- evaluations

    def _start(self, trainer: L.Trainer, what: str, batches: Any) -> None:
        now = time.perf_counter()
        self._evaluation = (now, now)
        if trainer.is_global_zero and what:
            total = sum(int(n) for n in batches) if isinstance(batches, (list, tuple)) else int(batches or 0)
            print(f"{what}: {total} batches, clustering every image", flush=True)

    def _batch(self, trainer: L.Trainer, what: str, done: int, total: int) -> None:
        started, last = self._evaluation
        now = time.perf_counter()
        if not trainer.is_global_zero or now - last < self.evaluation_seconds:
            return
        self._evaluation = (started, now)
        rate = done / max(now - started, 1e-9)
        told = ", ".join(t for t in (f"{rate:.2f} batches/s", eta(done, total, now - started)) if t)
        print(f"  {what} batch {done}/{total} ({told})", flush=True)

    @staticmethod
    def _total(batches: Any) -> int:
        return sum(int(n) for n in batches) if isinstance(batches, (list, tuple)) else int(batches or 0)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            self._start(trainer, "validating the untrained model (--trainer.num_sanity_val_steps 0 skips it)",
                        trainer.num_sanity_val_batches)
        else:  # later ones, in a fit, end with a line of their own
            self._start(trainer, "" if trainer.state.fn == "fit" else "validating", trainer.num_val_batches)
        self._done = 0

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._done += 1
        batches = trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches
        self._batch(trainer, "validation", self._done, self._total(batches))

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, f"testing {len(trainer.num_test_batches)} set(s)", trainer.num_test_batches)
        self._done = 0

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._done += 1
        self._batch(trainer, "test", self._done, self._total(trainer.num_test_batches))

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, "predicting", trainer.num_predict_batches)
        self._done = 0

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        self._done += 1
        self._batch(trainer, "predict", self._done, self._total(trainer.num_predict_batches))

    # ---------------------------------------------------------------- the fit

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started, self._start_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every:
            return
        seconds = max(time.perf_counter() - self._started, 1e-9)
        rate = (step - self._start_step) / seconds
        loss = trainer.callback_metrics.get("train/loss")
        budget = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        total = f"/{budget}" if budget else ""
        shown = f" loss {float(loss):.4f}" if loss is not None else ""
        left = eta(step - self._start_step, budget - self._start_step, seconds) if budget else ""
        told = ", ".join(t for t in (f"{rate:.2f} steps/s", left) if t)
        print(f"step {step}{total}{shown} ({told})", flush=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        score = trainer.callback_metrics.get("val/score")
        f1 = trainer.callback_metrics.get("val/f1")
        iou = trainer.callback_metrics.get("val/iou")
        step = model_step(trainer, pl_module)
        if score is not None and f1 is not None and iou is not None:
            print(f"validation at step {step}: score {float(score):.4f} (macro F1 {float(f1):.4f}, IoU "
                  f"{float(iou):.4f}; {SCORE})", flush=True)


GPU_SIZED_PARAMETERS = 5_000_000  # above this, or at GPU-sized inputs, a CPU fit of several ranks is warned about
GPU_SIZED_INPUT = 512


def cpu_step_seconds(pl_module: L.LightningModule, image_size: int, batch_size: int, probe: int = 128) -> float:
    """A rough time of one training step of ``pl_module`` on this CPU process: one forward of a
    ``probe`` px image, timed, scaled by the pixel ratio to ``image_size``, by 3 for the backward
    pass and by the batch size."""
    import time

    import torch

    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad():
            images = torch.rand(1, 3, probe, probe)
            pl_module(images)  # the first call's one-off costs, outside the measure
            start = time.perf_counter()
            pl_module(images)
            forward = time.perf_counter() - start
    finally:
        pl_module.train(was_training)
    return forward * (image_size / probe) ** 2 * 3 * batch_size


class CpuWarning(Callback):
    """One line when a fit of a GPU-sized model (more than ``GPU_SIZED_PARAMETERS`` parameters, or
    inputs of ``GPU_SIZED_INPUT`` px and more) runs on several CPU processes: what one step will take
    there, estimated, so that minutes without a line are expected (or the run is moved to a GPU)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size <= 1 or trainer.strategy.root_device.type != "cpu" or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        image_size = int(getattr(datamodule, "image_size", 0) or 0)
        parameters = sum(p.numel() for p in pl_module.parameters())
        if parameters < GPU_SIZED_PARAMETERS and image_size < GPU_SIZED_INPUT:
            return
        batch = int(getattr(datamodule, "batch_size", 1) or 1)
        seconds = cpu_step_seconds(pl_module, image_size or 128, batch)
        print(f"focal-pl: {type(getattr(pl_module, 'extractor', pl_module)).__name__} ({parameters / 1e6:.1f} M "
              f"parameters) at {image_size} px on {trainer.world_size} CPU processes: about {seconds:.0f} s per step "
              f"of {batch} image(s) per process (estimated from one {128} px forward); a GPU is the place for it "
              "(--trainer.accelerator gpu)", flush=True)
