"""The extractor contract: images B x 3 x H x W in [0, 1] -> features B x out_dim x H/stride x W/stride."""

from __future__ import annotations

from torch import Tensor, nn


class Extractor(nn.Module):
    """Base class of every FOCAL extractor. Subclasses set ``out_dim`` (feature channels) and
    ``stride`` (input pixels per feature cell) and implement ``forward``; configs that take an
    extractor list exactly these classes."""

    out_dim: int
    stride: int

    def parameter_count(self) -> int:
        """Parameters of the extractor (every run summary and ablation table lists it)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, images: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
