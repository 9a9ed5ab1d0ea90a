"""A training run's length stated in images, turned into steps for the run's actual batch size,
devices and gradient accumulation when fitting starts.

The official run's budget is stated as rounds of images (about 190 rounds of 4000); a step count written
into a config silently changes meaning with the batch size or the number of GPUs. Here the config
says how many images to train on and how many images to train between validations; the steps
follow from ``data.batch_size x devices x nodes x accumulate_grad_batches``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from focal_pl.internals import set_fit_length, set_validation_interval

log = logging.getLogger(__name__)


def is_final_step(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether the training batch that just ended is the run's last (by max_steps or max_epochs)."""
    if 0 < trainer.max_steps <= trainer.global_step:
        return True
    last_epoch = trainer.max_epochs is not None and trainer.max_epochs > 0 \
        and trainer.current_epoch >= trainer.max_epochs - 1
    return bool(last_epoch and batch_idx + 1 >= trainer.num_training_batches)


class TrainingBudget(Callback):
    """Sets ``trainer.max_steps`` and ``trainer.val_check_interval`` from image counts at fit start,
    and validates a fit once more at its end when its last step was not a validation step (so every
    run has a final score, of the model it ends with).

    Args:
        images: images to train on in all (None: the trainer's own ``max_steps`` / ``max_epochs``).
        validate_every: images between validations (None: the trainer's ``val_check_interval``).
        final_validation: validate after the last training step when it was not a validation step.
    """

    def __init__(self, images: int | None = None, validate_every: int | None = None,
                 final_validation: bool = True) -> None:
        for key, value in (("budget.images", images), ("budget.validate_every", validate_every)):
            if value is not None and value < 1:
                raise ValueError(f"{key} must be a positive number of images, got {value}")
        self.images = images
        self.validate_every = validate_every
        self.final_validation = final_validation
        self.steps: int | None = None
        self.validation_steps: int | None = None

    @staticmethod
    def images_per_step(trainer: L.Trainer) -> int:
        """Images one optimizer step consumes: batch size x data-parallel processes x accumulation."""
        datamodule = trainer.datamodule
        batch = getattr(datamodule, "batch_size", None) if datamodule is not None else None
        if not isinstance(batch, int):
            raise ValueError("budget: the data module has no integer batch_size to turn images into steps")
        return batch * trainer.world_size * trainer.accumulate_grad_batches

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or (self.images is None and self.validate_every is None):
            return
        per_step = self.images_per_step(trainer)
        if self.images is not None:
            self.steps = math.ceil(self.images / per_step)
            set_fit_length(trainer, self.steps)  # the budget, not an epoch count, ends the run
        if self.validate_every is not None:
            self.validation_steps = max(1, math.ceil(self.validate_every / per_step))
            set_validation_interval(trainer, self.validation_steps)
        if trainer.is_global_zero:
            log.info("budget: %s images in %s steps of %d images, validating every %s steps",
                     self.images, self.steps, per_step, self.validation_steps)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Lightning validates when asked to stop early: asking at the last step validates it
        if self.final_validation and is_final_step(trainer, batch_idx):
            trainer.should_stop = True
