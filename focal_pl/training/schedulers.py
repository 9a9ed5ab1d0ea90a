"""Learning-rate schedules that follow the run rather than numbers restated in configs: a cosine over
the whole run. (The official code's plateau rule is torch's ``ReduceLROnPlateau``, which
``FocalModule`` steps once per validation.)"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


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
