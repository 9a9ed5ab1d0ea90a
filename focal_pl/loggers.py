"""Loggers with focal-pl's run folders: a CSV logger that continues a resumed run's metrics.csv
(Lightning's deletes it), and the W&B preset: offline by default (synced later with ``wandb
sync``), online only when asked and logged in, never a crash for want of a login."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """An API key in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing metrics.csv is continued, not deleted."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            import csv

            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` for focal-pl's run folders: a run resumed with ``--ckpt_path``
    appends to its ``metrics.csv`` instead of starting it anew (the curves before the interruption
    stay). Same arguments as Lightning's."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


class WandbPreset(WandbLogger):
    """``WandbLogger`` with focal-pl's defaults: logs the resolved config, losses, metrics (the
    untrained validation as step 0), the learning rate (with ``LearningRateMonitor``) and
    validation pictures. Its run folder is every run's: ``<save_dir>/<name>/<version>/``
    (checkpoints, metrics.json, pictures, and W&B's own files under ``wandb/``).

    Args:
        project: W&B project.
        name: run folder name (the CLI sets it: the config's stem); the W&B run is ``name/version``.
        version: run folder version (the CLI sets it: ``version_N`` + what the command line changes).
        save_dir: folder of the runs.
        online: send to the W&B server; without a login this falls back to offline, with a warning.
            Runs started by ``wandb agent`` (``WANDB_SWEEP_ID`` set) are online so the sweep sees them.
        tags, group: W&B run tags and group (e.g. one group per sweep or ablation set).
        kwargs: anything else ``wandb.init`` takes.
    """

    def __init__(
        self,
        project: str = "focal-pl",
        name: str | None = None,
        version: str | None = None,
        save_dir: str = "runs",
        online: bool = False,
        tags: list[str] | None = None,
        group: str | None = None,
        **kwargs: Any,
    ) -> None:
        if os.environ.get("WANDB_SWEEP_ID") and not online:
            # started by `wandb agent`: the sweep only sees runs that report to the server
            log.info("W&B sweep agent detected (WANDB_SWEEP_ID); logging online")
            online = True
        if online and not wandb_logged_in():
            log.warning("W&B online logging was asked for but no login was found (wandb login / "
                        "WANDB_API_KEY); logging offline to %s instead", save_dir)
            online = False
        self._folder = (save_dir, name or "wandb_runs", version or "version_0")
        run_folder = Path(*self._folder)
        run_folder.mkdir(parents=True, exist_ok=True)
        super().__init__(project=project, name=f"{self._folder[1]}/{self._folder[2]}", save_dir=str(run_folder),
                         offline=not online, tags=tags, group=group, log_model=False, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # W&B warns that a None setting has no effect
            self._wandb_init.pop("anonymous", None)
        self.online = online

    @property
    def save_dir(self) -> str:
        return self._folder[0]

    @property
    def name(self) -> str:
        return self._folder[1]

    @property
    def version(self) -> str:
        return self._folder[2]
