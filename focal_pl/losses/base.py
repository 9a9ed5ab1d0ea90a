"""The pixel-loss contract: ``loss(features B x C x h x w, masks B x 1 x H x W in {0, 1}) -> scalar``."""

from __future__ import annotations

from torch import Tensor, nn


class PixelLoss(nn.Module):
    """Base class of every pixel loss. A loss whose behaviour depends on training progress (e.g.
    SCL's hard-label warm-up) overrides ``set_step`` / ``set_total_steps``; the module calls both
    for every loss, so there is no ``hasattr`` probing."""

    def set_total_steps(self, total: int) -> None:
        """Called once when fitting starts with the run's number of optimizer steps."""

    def set_step(self, step: int) -> None:
        """Called before every training step with the global step."""

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
