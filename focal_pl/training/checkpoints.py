"""The run's checkpoints, by one rule: ``last.ckpt`` is always the latest state, ``best-*.ckpt`` the
best validation scores.

``RunCheckpoint`` is Lightning's ``ModelCheckpoint`` (which keeps the top ``save_top_k`` by
``monitor``, names them, removes the dropped ones and ranks across resumes) with only what it lacks:

- ``last.ckpt`` after every validation (the end-of-fit one included, so the model a run reports is
  on disk), at the end of the fit, at a stop, and optionally every N steps or minutes, never
  renamed ``last-v1.ckpt`` (one run folder, one ``last.ckpt``);
- a stop on SIGINT / SIGTERM at a step boundary with ``last.ckpt`` saved there (``stopping``);
- writes that are atomic and carry the weights' sha256 (``AtomicCheckpointIO``, on
  ``focal_pl.files.checkpoint``);
- a ranking that survives a moved run folder (file names, not paths), and best checkpoints of steps
  after the one resumed from (written before a kill, never ranked) removed.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from focal_pl.files.atomic import remove_stale_temporaries
from focal_pl.files.checkpoint import atomic_save, read_checkpoint, stamp, verify
from focal_pl.training.stopping import FitStopped, StopRequest, agree_max

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO with atomic writes beside the target on any filesystem, the
    sha256 of the weights and optimizer state stored in each file and checked on every load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        atomic_save(stamp(checkpoint), path)

    def load_checkpoint(self, path: Any, map_location: Callable | Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:  # a caller that needs pickled objects: Lightning's reader, then the check
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=False)
            verify(checkpoint, path)
            return checkpoint
        return read_checkpoint(path, map_location=map_location or "cpu")


def stored_step(path: Path) -> int | None:
    """The global step a checkpoint file holds (memory-mapped, not verified), None when unreadable."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    except Exception:  # noqa: BLE001 - a description of what is on disk never fails
        return None


def on_disk(folder: Path) -> list[tuple[str, int | None]]:
    """The checkpoint files of a run's ``checkpoints/`` folder, newest step first: (name, step)."""
    files = [(p.name, stored_step(p)) for p in folder.glob("*.ckpt")] if folder.is_dir() else []
    return sorted(files, key=lambda item: -1 if item[1] is None else item[1], reverse=True)


def best_checkpoint(folder: Path) -> Path | None:
    """The best checkpoint of a run's ``checkpoints/`` folder: the one its last ranking (in
    ``last.ckpt``) put first, else the ``best-*.ckpt`` of the latest step; None when it has none."""
    best = sorted(folder.glob("best-*.ckpt")) if folder.is_dir() else []
    if not best:
        return None
    try:
        state = torch.load(folder / LAST, map_location="cpu", weights_only=True, mmap=True).get("callbacks") or {}
        ranked = next((v.get("best_model_path") for k, v in state.items() if k.startswith("RunCheckpoint")), None)
    except Exception:  # noqa: BLE001 - no readable last.ckpt: the latest best file
        ranked = None
    if ranked and (folder / Path(ranked).name).is_file():
        return folder / Path(ranked).name

    def step(path: Path) -> int:
        match = re.search(r"step=(\d+)", path.name)
        return int(match.group(1)) if match else -1

    return max(best, key=lambda path: (step(path), path.stat().st_mtime))


def run_checkpoint(run: Path, resume: bool = False) -> Path | None:
    """The checkpoint a run folder means, by one rule (docs/runs.md): to resume (``fit``), its
    ``last.ckpt``; to evaluate or export, its best checkpoint (the model its validation selected),
    else ``last.ckpt``. ``run`` may be the run folder or its ``checkpoints/``; None without either."""
    folder = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    last = folder / LAST if (folder / LAST).is_file() else None
    return last if resume else best_checkpoint(folder) or last


class RunCheckpoint(ModelCheckpoint):
    """Best and last checkpoints in ``<run>/checkpoints``: the checkpoint callback of every focal-pl
    run (``focal_pl.trainer`` and the CLI add it to a Trainer that has none).

    Args:
        monitor: the validation metric that ranks checkpoints (``val/score``, the official code's);
            None keeps no best checkpoint.
        mode: ``max`` or ``min``.
        save_top_k: how many best checkpoints to keep (-1: all, 0: none).
        filename: template of the best checkpoints' names (``best-{step}`` -> ``best-step=1200.ckpt``).
        last_every_n_steps: also write ``last.ckpt`` every N training steps (a SIGKILL then loses
            at most N steps).
        last_every_minutes: also write ``last.ckpt`` every so many minutes (rank 0's clock).
        dirpath: where to write (default: the run folder's ``checkpoints/``).
    """

    def __init__(
        self,
        monitor: str | None = "val/score",
        mode: Literal["max", "min"] = "max",
        save_top_k: int = 1,
        filename: str = "best-{step}",
        last_every_n_steps: int | None = None,
        last_every_minutes: float | None = None,
        dirpath: str | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if save_top_k < -1:
            raise ValueError(f"save_top_k must be >= -1, got {save_top_k}")
        if last_every_n_steps is not None and last_every_n_steps < 1:
            raise ValueError(f"last_every_n_steps must be >= 1, got {last_every_n_steps}")
        if last_every_minutes is not None and last_every_minutes <= 0:
            raise ValueError(f"last_every_minutes must be > 0, got {last_every_minutes}")
        super().__init__(dirpath=dirpath, filename=filename, monitor=monitor, mode=mode,
                         save_top_k=save_top_k if monitor is not None else 0, save_last=False,
                         save_on_train_epoch_end=False, enable_version_counter=False)
        self.last_every_n_steps = last_every_n_steps
        self.last_every_minutes = last_every_minutes
        self.stop = StopRequest()
        self.last_step: int | None = None  # the step of the last.ckpt this process wrote
        self._stop_signal = 0  # a stop agreed at a step end, carried out at the next boundary
        self._clock = time.monotonic()
        self._resumed = False  # set when a checkpoint's state was loaded

    # ---------------------------------------------------------------- where and how files are written

    @property
    def last_path(self) -> str:
        """``<dirpath>/last.ckpt``."""
        return os.path.join(str(self.dirpath), LAST)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)  # the run folder's checkpoints/ (a collective under DDP)
        self.dirpath = os.path.abspath(str(self.dirpath))  # one spelling across resumes and folders
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default: make it atomic
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        self.stop.remember()
        if stage == "fit" and trainer.is_global_zero:
            remove_stale_temporaries(Path(self.dirpath))

    def write_last(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` now (a collective call under DDP; rank 0 writes)."""
        trainer.save_checkpoint(self.last_path, weights_only=False)
        self.last_model_path = self.last_path
        self.last_step = trainer.global_step

    # ---------------------------------------------------------------- when

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self.stop.install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.stop.install()
        self._clock = time.monotonic()
        if self._resumed:  # what was logged after the checkpoint is logged again from here
            for logger in trainer.loggers:
                if hasattr(logger, "rewind"):
                    logger.rewind(trainer.global_step)
            self._remove_strays(trainer)
            self._resumed = False

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        # the untrained validation can take minutes and has nothing to save: a stop ends it at once
        if trainer.sanity_checking and trainer.state.fn == "fit":
            signum = agree_max(trainer, self.stop.signum)[0]
            if signum:
                raise FitStopped(signum, trainer.global_step, None)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._stop_signal:  # agreed at the last step's end, no validation came: last.ckpt holds that step
            raise FitStopped(self._stop_signal, trainer.global_step, self.last_path)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, *args, **kwargs)
        if trainer.fast_dev_run:
            return
        step = trainer.global_step
        timed = (self.last_every_minutes is not None and trainer.is_global_zero
                 and time.monotonic() - self._clock >= 60 * self.last_every_minutes)
        signum, timed = agree_max(trainer, self.stop.signum, int(timed))
        periodic = self.last_every_n_steps is not None and step % self.last_every_n_steps == 0
        if signum or timed or periodic:
            # a step boundary: the loader has served exactly this step's batches, so a run resumed
            # from here is the unbroken run. A validation due now still runs before the stop.
            self.write_last(trainer)
            self._clock = time.monotonic()
        self._stop_signal = signum

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or trainer.fast_dev_run:
            return
        super().on_validation_end(trainer, pl_module)  # the top-k best checkpoints
        self.write_last(trainer)  # every validation, whatever its score: the latest state
        signum = self._stop_signal or agree_max(trainer, self.stop.signum)[0]
        if signum and not trainer.should_stop:  # a fit that ends here anyway just ends
            raise FitStopped(signum, trainer.global_step, self.last_path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.last_step != trainer.global_step and not trainer.fast_dev_run:
            self.write_last(trainer)
        self._stop_signal = 0

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.stop.uninstall()
        if isinstance(exception, FitStopped) or trainer.state.fn != "fit":
            return
        note = f"stopped at step {trainer.global_step}; {self.describe_saved()}"
        if isinstance(exception, KeyboardInterrupt):  # Lightning turns it into exit(1): say it here
            if trainer.is_global_zero:
                print(f"focal-pl: {note}", file=sys.stderr, flush=True)
        else:
            exception.add_note(note)  # the command's one-line error, or a traceback, ends with it

    def describe_saved(self) -> str:
        """What the checkpoints folder holds now, whole (a state mid-step is never saved): last.ckpt's
        step, and any other checkpoint of a later step (a best one written where last.ckpt failed)."""
        folder = Path(str(self.dirpath))
        last = folder / LAST
        files = on_disk(folder)
        held = dict(files).get(LAST) if last.is_file() else None
        if last.is_file():
            step = self.last_step if self.last_step is not None else held
            said = f"last.ckpt holds step {step} ({last}), whole (a state mid-step is never saved)"
        else:
            said = "no last.ckpt was written"
        later = [f"{name} (step {step})" for name, step in files
                 if name != LAST and step is not None and (held is None or step > held)]
        if later:
            said += f"; also whole on disk: {', '.join(later)} in {folder}"
        return said

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.stop.uninstall()

    # ---------------------------------------------------------------- resuming

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_step": self.last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's ranking, its paths moved to this run's folder by file name (the run may have
        been moved since), keeping only the checkpoints that are still there."""
        folder = Path(str(self.dirpath))

        def here(path: Any) -> str:
            return str(folder / Path(str(path)).name) if path else ""

        ranked = {here(p): score for p, score in (state_dict.get("best_k_models") or {}).items()
                  if (folder / Path(str(p)).name).is_file()}
        moved = {**state_dict, "dirpath": self.dirpath, "best_k_models": ranked,
                 "best_model_path": here(state_dict.get("best_model_path")),
                 "kth_best_model_path": here(state_dict.get("kth_best_model_path")),
                 "last_model_path": here(state_dict.get("last_model_path"))}
        if moved["best_model_path"] not in ranked:
            moved["best_model_path"] = ""
        super().load_state_dict(moved)
        self.last_step = state_dict.get("last_step")
        self._resumed = True

    def _remove_strays(self, trainer: L.Trainer) -> None:
        """Best checkpoints of steps after the one resumed from (written before a kill, never
        ranked): removed, so that ``save_top_k`` holds across resumes."""
        prefix = self.filename.split("{", 1)[0] if self.filename else ""
        if not trainer.is_global_zero or not prefix or not Path(str(self.dirpath)).is_dir():
            return
        for path in Path(str(self.dirpath)).glob(f"{prefix}*.ckpt"):
            match = re.search(r"step=(\d+)", path.name)
            if match and int(match.group(1)) > trainer.global_step and str(path) not in self.best_k_models:
                path.unlink(missing_ok=True)
