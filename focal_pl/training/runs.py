"""Where a run's files go: the same folder Lightning's ModelCheckpoint puts ``checkpoints/`` in, and
file names for the images it writes."""

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


def safe_stem(name: str) -> str:
    """A file stem for an image name: its stem (no extension, so no ``x.jpg.png``), with every
    run of characters outside letters, digits, ``-`` and ``.`` replaced by one ``_`` and none at
    either end (``synthetic-1[12]`` -> ``synthetic-1_12``)."""
    stem = "".join(c if c.isalnum() or c in "-." else "_" for c in Path(name).stem)
    while "__" in stem:
        stem = stem.replace("__", "_")
    return stem.strip("_.") or "image"


def model_step(trainer: L.Trainer, module: L.LightningModule) -> int:
    """The training step of the model being evaluated: the trainer's while fitting, else the step of
    the checkpoint it was loaded from (``FocalModule.trained_steps``), else the trainer's."""
    if trainer.state.fn == "fit":
        return trainer.global_step
    trained = getattr(module, "trained_steps", None)
    return trained if trained is not None else trainer.global_step
