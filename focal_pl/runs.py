"""Where a run's files go: the same folder Lightning's ModelCheckpoint puts ``checkpoints/`` in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L


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


def machine() -> dict[str, Any]:
    """What a measurement ran on, written next to every figure: OS, CPU, cores, versions, GPU, date."""
    import multiprocessing
    import platform
    import sys
    from datetime import datetime, timezone

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": multiprocessing.cpu_count(), "threads": torch.get_num_threads(),
        "python": sys.version.split()[0], "torch": torch.__version__, "gpu": gpu,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One readable line of ``machine()`` for the head of a results table."""
    info = info or machine()
    where = info["gpu"] or f"{info['processor']}, {info['cpu_count']} cores ({info['threads']} threads)"
    return f"Machine: {where}, {info['platform']}, torch {info['torch']}, {info['date']}."
