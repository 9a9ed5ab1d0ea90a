"""Lightning's messages that say nothing about a run, silenced: its advertising tips and the
warnings its own code (or focal-pl's use of a documented hook) raises on every run."""

from __future__ import annotations

import logging
import warnings

# warnings raised on every run by Lightning itself or by a hook focal-pl overrides on purpose
LIBRARY_WARNINGS = (r".*isinstance\(treespec, LeafSpec\)", r".*overridden `transfer_batch_to_device`",
                    # the plateau rule is stepped by each validation: Lightning's own call before the first one
                    r"ReduceLROnPlateau conditioned on metric .* which is not available but strict is set to `False`")

# lines the focal-pl commands replace with their own (the run summary, the resume line, config.yaml)
COMMAND_WARNINGS = (r".*does not have many workers", r".*The 'anonymous' setting has no effect",
                    r".*`ArgumentParser\.add_instantiator` was deprecated", r".*`instantiate_classes` was deprecated",
                    r".*skip_none parameter was deprecated", r".*Checkpoint directory .* exists and is not empty",
                    r"`max_epochs` was not set",  # the budget in images sets the run's length at fit start
                    r"LightningCLI's args parameter is intended to run from within Python")  # focal-pl passes its own
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "lightning.fabric.utilities.seed")


class DropLines(logging.Filter):
    """Drops Lightning's advertising tips and, for the commands, the lines they say better."""

    COMMAND_NOISE = ("Seed set to", "GPU available:", "TPU available:", "HPU available:",
                     "Restoring states from the checkpoint", "Loaded model weights from the checkpoint",
                     "`Trainer.fit` stopped: `max_steps=")

    def __init__(self, commands: bool) -> None:
        super().__init__()
        self.commands = commands

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Tip:" not in message and not (self.commands and message.startswith(self.COMMAND_NOISE))


def quiet(commands: bool = False) -> None:
    """Silence the tips and per-run library warnings (``focal_pl.trainer`` and the commands call it;
    importing focal-pl changes nothing); ``commands``: also what the focal-pl commands print in
    their own words."""
    for pattern in LIBRARY_WARNINGS + (COMMAND_WARNINGS if commands else ()):
        warnings.filterwarnings("ignore", message=pattern)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        present = [f for f in logger.filters if isinstance(f, DropLines)]
        if any(f.commands or not commands for f in present):  # already as quiet as asked
            continue
        for old in present:
            logger.removeFilter(old)
        logger.addFilter(DropLines(commands))
