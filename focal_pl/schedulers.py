"""Learning-rate schedules that follow the run rather than numbers restated in configs: the official
code's plateau rule stepped exactly once per validation, and a cosine over the whole run."""

from __future__ import annotations

import math

from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau


class ValidationPlateau(LRScheduler):
    """``ReduceLROnPlateau`` (halve the lr after ``patience`` validations without improvement, as the
    official FOCAL code does) stepped by ``FocalModule`` once per validation with the validation
    score, whatever the validation interval or epoch length. The calls Lightning makes on its own
    step / epoch interval carry no score and change nothing, so the rule cannot drift off the
    validations. Its state travels in checkpoints like any scheduler's.

    Args:
        optimizer: the optimizer whose learning rate it lowers.
        mode, factor, patience, threshold, min_lr: as ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: Literal["min", "max"] = "max",
        factor: float = 0.5,
        patience: int = 3,
        threshold: float = 1e-4,
        min_lr: float = 1e-8,
    ) -> None:
        self.plateau = ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience,
                                         threshold=threshold, min_lr=min_lr)
        super().__init__(optimizer)

    @classmethod
    def wrapping(cls, plateau: ReduceLROnPlateau) -> ValidationPlateau:
        """The same rule around a ``ReduceLROnPlateau`` a config built itself."""
        scheduler = cls(plateau.optimizer)
        scheduler.plateau = plateau
        return scheduler

    def step(self, metric: float | None = None) -> None:  # type: ignore[override]
        """With a validation score: one plateau step. Without (Lightning's interval calls): nothing."""
        if metric is not None:
            self.plateau.step(metric)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.plateau.load_state_dict(state_dict["plateau"])
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class CosineToEnd(LRScheduler):
    """Cosine annealing from the optimizer's lr to ``eta_min`` over the whole run, stepped every
    optimizer step. The run's length comes from the trainer (``FocalModule`` calls
    ``set_total_steps``), so it follows the training budget and is never restated in a config.

    Args:
        optimizer: the optimizer whose learning rate it sets.
        eta_min: the learning rate at the last step.
    """

    def __init__(self, optimizer: Optimizer, eta_min: float = 0.0) -> None:
        self.eta_min = eta_min
        self.total_steps = 1
        super().__init__(optimizer)

    def set_total_steps(self, total: int) -> None:
        """The run's number of optimizer steps."""
        self.total_steps = max(1, int(total))

    def get_lr(self) -> list[float]:
        progress = min(self.last_epoch, self.total_steps) / self.total_steps
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2
                for base in self.base_lrs]
