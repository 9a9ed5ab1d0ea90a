"""Where a run's files go: the same folder Lightning's ModelCheckpoint puts ``checkpoints/`` in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


def run_dir(trainer: L.Trainer) -> Path:
    """``save_dir/name/version`` of the first logger (``version_N`` for numbered versions, the
    run id for W&B), else ``default_root_dir``. A collective call under DDP: call it on every rank."""
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        folder = trainer.default_root_dir
    else:
        version = logger.version
        version = version if isinstance(version, str) else f"version_{version}"
        folder = os.path.join(logger.save_dir or trainer.default_root_dir, str(logger.name), version)
    return Path(trainer.strategy.broadcast(str(folder)))


def safe_stem(name: str) -> str:
    """A file stem for an image name: its stem (no extension, so no ``x.jpg.png``), with every
    character outside letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).stem)
    return stem or "image"


def machine() -> dict[str, Any]:
    """What a measurement ran on, written next to every figure: OS, CPU, cores, versions, GPU, date."""
    import multiprocessing
    import platform
    import sys
    from datetime import datetime, timezone

    import torch

    from focal_pl.provenance import cpu_model, versions_line

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(), "processor": cpu_model(),
        "cpu_count": multiprocessing.cpu_count(), "threads": torch.get_num_threads(),
        "python": sys.version.split()[0], "torch": torch.__version__, "gpu": gpu,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "code": versions_line(),
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One readable line of ``machine()`` for the head of a results table: the machine, then the
    commit and the main versions."""
    info = info or machine()
    where = info["gpu"] or f"{info['processor']}, {info['cpu_count']} cores ({info['threads']} threads)"
    code = f" Code: {info['code']}." if info.get("code") else ""
    return f"Machine: {where}, {info['platform']}, torch {info['torch']}, {info['date']}.{code}"


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
