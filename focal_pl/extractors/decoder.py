"""A light fusion decoder over a backbone's feature levels (SegFormer's: a 1x1 projection per level,
each brought to the output grid, concatenated, fused by a 1x1 convolution), so that an ablation
row uses the whole network and not the stem before its first feature level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FusionDecoder(nn.Module):
    """Feature levels (channels ``channels``, strides ``strides``) -> ``out_dim`` x the stride-``stride`` grid.

    Args:
        channels: channels of each level, finest first.
        strides: input pixels per cell of each level.
        stride: the output grid's stride (levels finer than it are average-pooled, coarser ones
            upsampled bilinearly).
        out_dim: output channels.
        decoder_dim: channels of each level after its projection (SegFormer: 256 for B0-B1, 768 above).
    """

    def __init__(self, channels: list[int], strides: list[int], stride: int, out_dim: int,
                 decoder_dim: int = 256) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"one stride per level: {len(channels)} levels, {len(strides)} strides")
        self.strides, self.stride = list(strides), stride
        self.project = nn.ModuleList(nn.Conv2d(c, decoder_dim, 1) for c in channels)
        self.fuse = nn.Sequential(
            nn.Conv2d(len(channels) * decoder_dim, decoder_dim, 1, bias=False),
            nn.BatchNorm2d(decoder_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(decoder_dim, out_dim, 1),
        )

    def forward(self, levels: list[Tensor], size: tuple[int, int]) -> Tensor:
        """``levels`` (finest first) -> ``B x out_dim x size``."""
        brought = []
        for level, project, stride in zip(levels, self.project, self.strides):
            level = project(level)
            if stride < self.stride:
                level = F.adaptive_avg_pool2d(level, size)
            elif tuple(level.shape[-2:]) != size:
                level = F.interpolate(level, size=size, mode="bilinear", align_corners=False)
            brought.append(level)
        return self.fuse(torch.cat(brought, dim=1))
