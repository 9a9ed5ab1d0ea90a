"""The private internals of Lightning and jsonargparse that focal-pl must use, each in one place.

None has a public equivalent in the pinned versions. ``tests/unit/test_internals.py`` checks each
one by its effect (a fit that runs for the steps set here, validations at the interval set here, a
``LightningCLI`` whose override is called and decides the run), so that an upgrade that changes
one fails there, naming it, instead of breaking a run. (scikit-learn's private HDBSCAN modules,
which the exact clustering reuses, are imported in ``focal_pl.clustering.fast_hdbscan.sklearn_tree``
alone, with a test of their own.)
"""

from __future__ import annotations

from typing import Any

# LightningCLI methods focal-pl overrides, with why (each is called by LightningCLI's constructor):
# - _parse_ckpt_path: Lightning replaces the model config by a checkpoint's hyperparameters, which
#   would drop evaluation-time choices given with the checkpoint (--model.init_args.clusterer ...).
LIGHTNING_CLI_OVERRIDES = ("_parse_ckpt_path",)


def set_fit_length(trainer: Any, steps: int) -> None:
    """Set a fit's length in steps once the trainer exists (the training budget in images becomes
    steps for the actual batch size and world size), with no epoch limit: ``Trainer.max_steps`` and
    ``max_epochs`` have no setters; they read these."""
    trainer.fit_loop.epoch_loop.max_steps = steps
    trainer.fit_loop.max_epochs = -1


def set_validation_interval(trainer: Any, steps: int) -> None:
    """Validate every ``steps`` training steps, across epoch ends, once the trainer exists (before
    the fit's data is set up, where Lightning turns the interval into batches)."""
    trainer.val_check_interval = steps
    trainer.check_val_every_n_epoch = None


def option_names(parser: Any) -> list[str]:
    """Every option of a jsonargparse parser and of its subcommands' parsers (``trainer.max_steps``,
    ...), for the nearest-key hint of a mistyped option. jsonargparse keeps them as argparse does."""
    names = [action.dest for action in getattr(parser, "_actions", [])]
    for action in getattr(parser, "_actions", []):
        for sub_parser in (getattr(action, "choices", None) or {}).values():
            if hasattr(sub_parser, "_actions"):
                names += [a.dest for a in sub_parser._actions]
    return names
