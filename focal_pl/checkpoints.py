"""The run's checkpoints, by one rule: ``last.ckpt`` is always the latest state, ``best-*.ckpt`` the
best validation scores.

``last.ckpt`` is written after every validation (the end-of-fit one included, so the model a run
reports is on disk), at the end of the fit, when a fit is stopped by SIGINT / SIGTERM (at a step
boundary, see ``focal_pl.stopping``), and optionally every N steps or minutes. It is never
renamed ``last-v1.ckpt``: one run folder, one ``last.ckpt``. ``best-*.ckpt`` keeps the top
``save_top_k`` by ``monitor`` across resumes (file names are kept relative to the run's folder, so a
resumed or moved run keeps its ranking). Every write is atomic and carries the weights' sha256
(``checkpoint_io``); a resumed run drops the metrics rows its loggers wrote at or after the
checkpoint's step, so that each row is written once.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from focal_pl.checkpoint_io import AtomicCheckpointIO
from focal_pl.distributed import process_alive
from focal_pl.runs import run_dir
from focal_pl.stopping import FitStopped, StopRequest, agree_max

LAST = "last.ckpt"


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of writes whose process died (a SIGKILL mid-save leaves one behind)."""
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)


def checkpoint_name(template: str, metrics: dict[str, Any]) -> str:
    """``best-{step}`` -> ``best-step=1200.ckpt``: each ``{key}`` or ``{key:format}`` becomes
    ``key=value`` (as Lightning names checkpoints; ``/`` in a key becomes ``_``)."""
    def value(match: re.Match) -> str:
        key, spec = match.group(1), match.group(2) or ""
        found = metrics.get(key, 0)
        number = found.item() if isinstance(found, torch.Tensor) else found
        return f"{key.replace('/', '_')}={format(number, spec[1:]) if spec else number}"

    return re.sub(r"\{([\w/.]+)(:[^}]*)?\}", value, template) + ".ckpt"


def is_lightning_default(callback: Any) -> bool:
    """Whether ``callback`` is the ``ModelCheckpoint()`` a Trainer adds when it has no checkpoint
    callback (all options at their defaults), which ``RunCheckpoint`` takes the place of."""
    return (type(callback) is ModelCheckpoint and callback.monitor is None and callback.filename is None
            and callback.save_last is None and callback.save_top_k == 1 and callback.every_n_epochs == 1
            and callback.dirpath is None)


class RunCheckpoint(Checkpoint):
    """Best and last checkpoints in ``<run>/checkpoints``: the checkpoint callback of every focal-pl
    run (the module adds it to a Trainer that has none, in place of Lightning's default).

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
        self.monitor, self.mode, self.save_top_k, self.filename = monitor, mode, save_top_k, filename
        self.last_every_n_steps = last_every_n_steps
        self.last_every_minutes = last_every_minutes
        self.dirpath = dirpath
        self.best_k_models: dict[str, float] = {}  # path -> score
        self.best_model_path, self.best_model_score = "", None
        self.last_model_path = ""
        self.current_score: float | None = None
        self.stop = StopRequest()
        self.last_step: int | None = None  # the step of the last.ckpt this process wrote
        self._stop_signal = 0  # a stop agreed at a step end, carried out at the next boundary
        self._clock = time.monotonic()
        self._resumed = False  # set when a checkpoint's state was loaded

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    # ---------------------------------------------------------------- where and how files are written

    @property
    def last_path(self) -> str:
        """``<dirpath>/last.ckpt``."""
        return os.path.join(str(self.dirpath), LAST)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(run_dir(trainer) / "checkpoints")  # collective under DDP
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

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def _save_best(self, trainer: L.Trainer) -> None:
        """Keep this validation's checkpoint when it is among the ``save_top_k`` best by ``monitor``."""
        if self.save_top_k == 0 or self.monitor is None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise KeyError(f"RunCheckpoint(monitor={self.monitor!r}): the validation logged no such metric "
                           f"(logged: {', '.join(sorted(trainer.callback_metrics)) or 'nothing'})")
        current = float(value)
        if math.isnan(current):
            current = -math.inf if self.mode == "max" else math.inf
        self.current_score = current
        scores = dict(self.best_k_models)
        ranked = sorted(scores, key=scores.get, reverse=self.mode == "max")  # best first
        if self.save_top_k != -1 and len(scores) >= self.save_top_k and not self._better(current, scores[ranked[-1]]):
            return
        metrics = {**trainer.callback_metrics, "step": trainer.global_step, "epoch": trainer.current_epoch}
        path = os.path.join(str(self.dirpath), checkpoint_name(self.filename, metrics))
        scores[path] = current
        ranked = sorted(scores, key=scores.get, reverse=self.mode == "max")
        dropped = ranked[self.save_top_k:] if self.save_top_k != -1 else []
        self._set_ranking({p: scores[p] for p in ranked if p not in dropped})
        trainer.save_checkpoint(path, weights_only=False)
        for old in dropped:
            if old != path:
                trainer.strategy.remove_checkpoint(old)

    def _set_ranking(self, scores: dict[str, float]) -> None:
        self.best_k_models = dict(scores)
        if scores:
            self.best_model_path = max(scores, key=scores.get) if self.mode == "max" else min(scores, key=scores.get)
            self.best_model_score = torch.tensor(scores[self.best_model_path])  # a tensor, as ModelCheckpoint's

    # ---------------------------------------------------------------- when

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self.stop.install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
        self._save_best(trainer)
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
        last = Path(self.last_path)
        whole = ", whole (a state mid-step is never saved)"
        held = (f"last.ckpt holds step {self.last_step} ({last}){whole}" if self.last_step is not None
                else f"last.ckpt holds an earlier state ({last}){whole}" if last.is_file()
                else "no checkpoint was written")
        note = f"stopped at step {trainer.global_step}; {held}"
        if isinstance(exception, KeyboardInterrupt):  # Lightning turns it into exit(1): say it here
            if trainer.is_global_zero:
                print(f"focal-pl: {note}", file=sys.stderr, flush=True)
        else:
            exception.add_note(note)  # the command's one-line error, or a traceback, ends with it

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.stop.uninstall()

    # ---------------------------------------------------------------- resuming

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "last_step": self.last_step,
                "best_k_models": {os.path.basename(p): float(s) for p, s in self.best_k_models.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "best_k_models" not in state_dict:
            return
        folder = Path(str(self.dirpath))  # names, not paths: the run may have been moved since
        named = {Path(str(path)).name: float(score) for path, score in state_dict["best_k_models"].items()}
        scores = {str(folder / name): score for name, score in named.items() if (folder / name).is_file()}
        self._set_ranking(scores)
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
