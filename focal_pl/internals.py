"""The private internals of Lightning and jsonargparse that focal-pl must use, each in one place.

Each has no public equivalent in the pinned versions; ``tests/test_internals.py`` checks every one
of them against the installed libraries, so that an upgrade that moves one fails there, with a
message naming it, instead of breaking a run. (scikit-learn's private HDBSCAN modules, which the
exact clustering reuses, are imported in ``focal_pl.clustering``, pinned below scikit-learn's next
minor release and compared with its public class by the tests.)
"""

from __future__ import annotations

from typing import Any

# LightningCLI methods focal-pl overrides (tests check they exist and are called as expected)
LIGHTNING_CLI_HOOKS = ("_parse_ckpt_path",)


def set_max_steps(trainer: Any, steps: int) -> None:
    """Set a fit's length once the trainer exists (the training budget in images becomes steps for
    the actual batch size and world size): ``Trainer.max_steps`` has no setter; it reads this."""
    trainer.fit_loop.epoch_loop.max_steps = steps


def option_names(parser: Any) -> list[str]:
    """Every option of a jsonargparse parser and of its subcommands' parsers (``trainer.max_steps``,
    ...), for the nearest-key hint of a mistyped option. jsonargparse keeps them as argparse does."""
    names = [action.dest for action in getattr(parser, "_actions", [])]
    for action in getattr(parser, "_actions", []):
        for sub_parser in (getattr(action, "choices", None) or {}).values():
            if hasattr(sub_parser, "_actions"):
                names += [a.dest for a in sub_parser._actions]
    return names
