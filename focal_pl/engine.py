"""The one place a focal-pl run's callbacks are chosen: ``run_callbacks`` (what every run has, for
each kind it was not given), used by ``focal_pl.trainer(...)`` for scripts and by the CLI for the
commands, as anomalib's Engine does.

A plain ``L.Trainer`` also trains, validates (the module clusters and logs ``val/score``) and
steps the plateau rule; these callbacks add the run's files: ``last.ckpt`` / ``best-*.ckpt``
(``RunCheckpoint``), ``metrics.json`` and pictures (``ValidationRecord``), the test report, the
predictions, ``run.json``, the budget in images, the end-of-fit summary, the DDP peer watch, and
lines for log files where stdout is not a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import Logger

from focal_pl.evaluation import PredictionWriter, RunSummary, TestReport, ValidationRecord
from focal_pl.training.budget import TrainingBudget
from focal_pl.training.checkpoints import RunCheckpoint
from focal_pl.training.distributed import PeerWatch
from focal_pl.training.loggers import CSVLogger
from focal_pl.training.progress import CpuWarning, LogProgress, RunProgressBar
from focal_pl.training.provenance import Provenance
from focal_pl.training.quiet import quiet

# every run's callbacks, in the order they act at the end of a validation (the record before the summary)
RUN_CALLBACKS: tuple[type[Callback], ...] = (ValidationRecord, TestReport, PredictionWriter, TrainingBudget,
                                             Provenance, PeerWatch, CpuWarning, RunSummary, RunCheckpoint)


def run_callbacks(given: list[Callback], command: list[str] | None = None) -> list[Callback]:
    """The callbacks of ``RUN_CALLBACKS`` that ``given`` has no instance of, each at its defaults
    (``Provenance`` records ``command`` as the run's command line when one is given)."""
    missing = []
    for kind in RUN_CALLBACKS:
        if not any(isinstance(callback, kind) for callback in given):
            missing.append(Provenance(command) if kind is Provenance else kind())
    return missing


def progress_for(trainer_args: dict[str, Any], callbacks: list[Callback]) -> tuple[dict[str, Any], list[Callback]]:
    """Progress as people expect it: on a terminal, Lightning's bars, the fit's counting the run's
    budget (``RunProgressBar``: its ETA is the run's end); in a log file, a line every
    ``log_every_n_steps`` steps and every half minute of an evaluation (``LogProgress``), each with
    an ETA, instead of a bar redrawn on every step. Nothing is added where progress was turned off
    or a progress callback is given."""
    if trainer_args.get("enable_progress_bar") is False \
            or any(isinstance(c, (LogProgress, ProgressBar)) for c in callbacks):
        return trainer_args, []
    if sys.stdout.isatty():
        return trainer_args, [RunProgressBar()]
    every = max(1, int(trainer_args.get("log_every_n_steps") or 50))
    return {**trainer_args, "enable_progress_bar": False}, [LogProgress(every=every)]


def trainer(root: str | os.PathLike = "runs", name: str | None = None, version: str | None = None, *,
            callbacks: list[Callback] | None = None, logger: Logger | bool | None = None,
            **trainer_args: Any) -> L.Trainer:
    """A Lightning ``Trainer`` for FOCAL runs: its run folder is ``root/[name/]version_N`` (metrics
    CSV, checkpoints, ``metrics.json``, pictures, ``run.json``), with the run's callbacks
    (``run_callbacks``) after the ones given, and every other Trainer argument as given. Lightning's
    tips and per-run warnings are silenced.

    ``focal_pl.trainer(max_steps=40, val_check_interval=20).fit(module, datamodule)``
    """
    quiet()
    given = list(callbacks or [])
    trainer_args, progress = progress_for(trainer_args, given)
    if logger is None:
        logger = CSVLogger(str(root), name=name, version=version)
    return L.Trainer(logger=logger, callbacks=[*given, *progress, *run_callbacks(given)], **trainer_args)
