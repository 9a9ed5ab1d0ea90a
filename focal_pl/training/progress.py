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
