"""The W&B preset: offline by default (runs land in ``<save_dir>/wandb`` and can be synced later
with ``wandb sync``), online only when asked and logged in, never a crash for want of a login."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """An API key in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbPreset(WandbLogger):
    """``WandbLogger`` with focal-pl's defaults: logs the resolved config, losses, metrics, the
    learning rate (with ``LearningRateMonitor``) and validation pictures.

    Args:
        project: W&B project.
        name: run name (default: W&B's).
        save_dir: folder of the local run files.
        online: send to the W&B server; without a login this falls back to offline, with a warning.
            Runs started by ``wandb agent`` (``WANDB_SWEEP_ID`` set) are online so the sweep sees them.
        tags, group: W&B run tags and group (e.g. one group per sweep or ablation set).
        kwargs: anything else ``wandb.init`` takes.
    """

    def __init__(
        self,
        project: str = "focal-pl",
        name: str | None = None,
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
                        "WANDB_API_KEY); logging offline to %s/wandb instead", save_dir)
            online = False
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(project=project, name=name, save_dir=save_dir, offline=not online,
                         tags=tags, group=group, log_model=False, **kwargs)
        self.online = online
