"""Where a run's files go: the same folder Lightning's ModelCheckpoint puts ``checkpoints/`` in."""

from __future__ import annotations

import os
from pathlib import Path

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
