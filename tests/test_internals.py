"""The library internals focal-pl relies on (focal_pl.internals) still exist in the installed
versions: an upgrade that moves one fails here, naming it, not in the middle of a run."""

from __future__ import annotations

import inspect

import lightning as L
import pytest
from lightning.pytorch.cli import LightningCLI

from focal_pl.internals import LIGHTNING_CLI_HOOKS, option_names, set_max_steps


def test_a_fits_length_can_be_set_once_the_trainer_exists():
    trainer = L.Trainer(max_steps=-1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    assert hasattr(trainer.fit_loop, "epoch_loop") and hasattr(trainer.fit_loop.epoch_loop, "max_steps"), \
        "Lightning moved fit_loop.epoch_loop.max_steps: focal_pl.internals.set_max_steps must follow"
    set_max_steps(trainer, 123)
    assert trainer.max_steps == 123, "Trainer.max_steps no longer reads fit_loop.epoch_loop.max_steps"


def test_the_option_names_of_a_cli_parser_are_reachable():
    from focal_pl.cli.lightning import build_cli_class
    from focal_pl.data import ForgeryDataModule
    from focal_pl.module import FocalModule

    seen = {}

    class Probe(build_cli_class()):
        def parse_arguments(self, parser, args):
            seen["names"] = option_names(parser)
            raise SystemExit(0)

    with pytest.raises(SystemExit):
        Probe(FocalModule, ForgeryDataModule, subclass_mode_model=True, auto_configure_optimizers=False,
              args=["fit", "--trainer.max_steps", "1"])
    names = set(seen["names"])
    assert {"trainer.max_steps", "data.batch_size", "budget.images"} <= names, \
        "jsonargparse no longer keeps its options in _actions: focal_pl.internals.option_names must follow"


@pytest.mark.parametrize("hook", LIGHTNING_CLI_HOOKS)
def test_the_lightning_cli_hooks_focal_pl_overrides_are_called(hook):
    assert hasattr(LightningCLI, hook), f"LightningCLI.{hook} is gone: FocalCLI's override of it is dead code"
    assert hook in inspect.getsource(LightningCLI), f"LightningCLI no longer calls {hook}"
