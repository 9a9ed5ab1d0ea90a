"""Fusion of trained extractors without retraining (FOCAL.md section 5): each member's features,
L2-normalized and resized to the first member's grid, concatenated along channels."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def extractor_from_checkpoint(path: str) -> nn.Module:
    """The extractor of a focal-pl checkpoint (its config travels in it), frozen, in eval mode."""
    from focal_pl.module import FocalModule

    module = FocalModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    extractor = module.extractor.eval()
    for parameter in extractor.parameters():
        parameter.requires_grad_(False)
    return extractor


class FusedExtractor(nn.Module):
    """Several extractors as one: B x 3 x H x W -> B x (C1 + C2 + ...) x h1 x w1.

    Args:
        checkpoints: focal-pl checkpoints whose extractors are fused (e.g. a ViT and an HRNet).
        extractors: extractors given directly (Python use); appended after the checkpoints'.
        resize: how members are brought to the first one's grid: bilinear (default) or nearest
            (the official code's choice, which keeps every 4th HRNet pixel).
    """

    def __init__(
        self,
        checkpoints: list[str] | None = None,
        extractors: list[nn.Module] | None = None,
        resize: Literal["bilinear", "nearest"] = "bilinear",
    ) -> None:
        super().__init__()
        members = [extractor_from_checkpoint(p) for p in checkpoints or []] + list(extractors or [])
        if len(members) < 1:
            raise ValueError("FusedExtractor needs at least one checkpoint or extractor")
        if resize not in ("bilinear", "nearest"):
            raise ValueError(f"resize must be 'bilinear' or 'nearest', got {resize!r}")
        self.members = nn.ModuleList(members)
        self.resize = resize
        self.member_channels: list[int] | None = None

    def forward(self, images: Tensor) -> Tensor:
        features = [F.normalize(member(images).float(), dim=1) for member in self.members]
        size = features[0].shape[-2:]
        aligned = [
            f if f.shape[-2:] == size
            else F.interpolate(f, size=size, mode=self.resize,
                               **({"align_corners": False} if self.resize == "bilinear" else {}))
            for f in features
        ]
        self.member_channels = [f.shape[1] for f in aligned]
        return torch.cat(aligned, dim=1)
