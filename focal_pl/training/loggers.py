"""Loggers with focal-pl's run folders: a CSV logger that continues a resumed run's metrics.csv
(Lightning's deletes it), and the W&B preset: offline by default (synced later with ``wandb
sync``), online only when asked and logged in, never a crash for want of a login."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from focal_pl.files.atomic import naming

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """An API key in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class RunMetricsWriter:
    """``metrics.csv`` and ``hparams.yaml`` of a run folder, laid out as Lightning's CSV writer does
    (one row per logging call, a ``step`` column, sorted columns), except that every row reaches the
    file when it is logged (a killed run loses none), an existing ``metrics.csv`` is continued
    instead of deleted, and it can be rewound to a step (a resumed run drops the rows logged at or
    after the step of its checkpoint, which it logs again)."""

    NAME_METRICS_FILE = "metrics.csv"

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.metrics: list[dict[str, Any]] = []  # never more than the row being written
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.metrics_keys: list[str] = []
        os.makedirs(log_dir, exist_ok=True)
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics_dict.items()}
        row["step"] = len(self._read()) if step is None else step
        self.metrics.append(row)
        self.save()

    def log_hparams(self, params: dict[str, Any]) -> None:
        path = os.path.join(self.log_dir, "hparams.yaml")
        with naming(path):
            save_hparams_to_yaml(path, params)

    def _read(self) -> list[dict[str, str]]:
        if not os.path.isfile(self.metrics_file_path):
            return []
        with open(self.metrics_file_path, newline="") as handle:
            return list(csv.DictReader(handle))

    def _write(self, rows: list[dict[str, Any]], mode: str) -> None:
        with naming(self.metrics_file_path), open(self.metrics_file_path, mode, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.metrics_keys)
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)

    def save(self) -> None:
        """Write the rows not written yet (the whole file again when a column is new)."""
        if not self.metrics:
            return
        new = set().union(*self.metrics) - set(self.metrics_keys)
        self.metrics_keys = sorted(set(self.metrics_keys) | new)
        rows, self.metrics = self.metrics, []  # a failed write is not tried again by every later call
        if new or not os.path.isfile(self.metrics_file_path):
            self._write(self._read() + rows, "w")
        else:
            self._write(rows, "a")

    def rewind(self, step: int) -> None:
        """Drop the rows logged at ``step`` or later (and a row cut short by a full disk or a kill)."""
        self.metrics = []
        if os.path.isfile(self.metrics_file_path):
            self._write([r for r in self._read() if _step(r) is not None and _step(r) < step], "w")


def _step(row: dict[str, str | None]) -> float | None:
    """A metrics row's step, None when the row is damaged."""
    try:
        return float(row.get("step") or "nan") if None not in row.values() else None
    except ValueError:
        return None


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` for focal-pl's run folders: a run resumed with ``--ckpt_path``
    continues its ``metrics.csv`` instead of starting it anew (the curves before the interruption
    stay), and the rows logged after the checkpoint it resumes from are dropped first (``rewind``,
    called by ``RunCheckpoint``), so that every row is in the file once; rows reach the file as they
    are logged.

    Args:
        save_dir: the root of the run folders.
        name: the run folder's parent, None for the config's name (the CLI fills it in:
            ``runs/<config>/<version>``); a plain ``Trainer`` then writes to ``save_dir/<version>``.
        version: the run folder, None for the next ``version_N`` (the CLI adds what the command
            line changed).
        prefix, flush_logs_every_n_steps: as Lightning's ``CSVLogger``.
    """

    def __init__(self, save_dir: str = "runs", name: str | None = None, version: int | str | None = None,
                 prefix: str = "", flush_logs_every_n_steps: int = 100) -> None:
        super().__init__(save_dir, name=name or "", version=version, prefix=prefix,
                         flush_logs_every_n_steps=flush_logs_every_n_steps)

    @property
    @rank_zero_experiment
    def experiment(self) -> RunMetricsWriter:
        if self._experiment is None:
            self._experiment = RunMetricsWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def rewind(self, step: int) -> None:
        """Drop the rows logged at ``step`` or later (a run resumed from a checkpoint of that step
        logs them again)."""
        self.experiment.rewind(step)


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
