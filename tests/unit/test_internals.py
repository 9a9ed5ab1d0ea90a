"""The library internals focal-pl relies on (focal_pl.internals), each checked by its effect in the
installed versions: an upgrade that changes one fails here, naming it, not in the middle of a run."""

from __future__ import annotations

import lightning as L
import pytest
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel

from focal_pl.internals import LIGHTNING_CLI_OVERRIDES, option_names, set_fit_length, set_validation_interval


class Steps(Callback):
    """Sets the fit's length and validation interval at set-up, as the training budget does, and
    records the steps at which validations ran."""

    def __init__(self, steps: int, every: int | None = None) -> None:
        self.steps, self.every, self.validated = steps, every, []

    def setup(self, trainer, pl_module, stage):
        set_fit_length(trainer, self.steps)
        if self.every is not None:
            set_validation_interval(trainer, self.every)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.validated.append(trainer.global_step)


def boring_trainer(callback: Callback) -> L.Trainer:
    return L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[callback])


def test_a_fits_length_set_once_the_trainer_exists_holds_across_epochs():
    steps = Steps(7)  # 3 batches an epoch and max_epochs=1: only the length set here can make 7 steps
    trainer = boring_trainer(steps)
    trainer.fit(BoringModel(), BoringDataModule())
    assert trainer.global_step == 7, "Lightning no longer reads fit_loop.epoch_loop.max_steps / fit_loop.max_epochs: " \
                                     "focal_pl.internals.set_fit_length must follow"


def test_a_validation_interval_set_once_the_trainer_exists_counts_steps_across_epochs():
    steps = Steps(8, every=2)
    trainer = boring_trainer(steps)
    trainer.fit(BoringModel(), BoringDataModule())
    assert steps.validated[:4] == [2, 4, 6, 8], \
        f"validations at {steps.validated}: focal_pl.internals.set_validation_interval must follow Lightning"


def test_the_option_names_of_a_cli_parser_are_reachable():
    from focal_pl.cli.lightning import build_cli_class

    seen = {}

    class Probe(build_cli_class()):
        def parse_arguments(self, parser, args):
            seen["names"] = option_names(parser)
            raise SystemExit(0)

    from focal_pl.data import ForgeryDataModule
    from focal_pl.module import FocalModule

    with pytest.raises(SystemExit):
        Probe(["fit", "--trainer.max_steps", "1"], model_class=FocalModule, datamodule_class=ForgeryDataModule,
              subclass_mode_model=True, auto_configure_optimizers=False)
    names = set(seen["names"])
    assert {"trainer.max_steps", "data.batch_size", "budget.images"} <= names, \
        "jsonargparse no longer keeps its options in _actions: focal_pl.internals.option_names must follow"


@pytest.mark.parametrize("hook", LIGHTNING_CLI_OVERRIDES)
def test_each_lightning_cli_method_focal_pl_overrides_is_called_by_its_constructor(hook, tmp_path):
    called = []

    class Probe(LightningCLI):
        pass

    def record(self, *args, **kwargs):
        called.append(hook)
        return getattr(LightningCLI, hook)(self, *args, **kwargs)

    setattr(Probe, hook, record)
    Probe(BoringModel, BoringDataModule, run=False, args=["--trainer.logger", "false",
                                                          "--trainer.default_root_dir", str(tmp_path)])
    assert called == [hook], f"LightningCLI no longer calls {hook}: FocalCLI's override of it is dead code"
