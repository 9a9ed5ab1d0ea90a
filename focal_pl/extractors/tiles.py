"""Features of a full-resolution image without squashing it: the extractor runs on overlapping tiles
of its training size, and the tiles' features are stitched into one map (overlaps blended).

Resizing a 4000 x 3000 photo to 1024 x 1024 before looking at it is itself a manipulation (it
erases the traces FOCAL looks for). Here each tile is a window of the image at its own resolution;
a feature cell covered by several tiles gets their weighted mean, the weight a ramp that falls
towards each tile's border (where a tile sees least context), so the seams do not show. The stitched
map is clustered once per image (clustering tile by tile would label each tile on its own, with its
own "largest cluster"), by the clusterer, which pools it when it has more points than it takes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Starts of tiles of ``tile`` pixels every ``step`` covering ``length`` (the last one flush with the end)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def ramp(cells: int, border: int, device: torch.device) -> Tensor:
    """A 1-D blending weight: 1 inside, falling linearly to a small positive value over ``border`` cells at each end."""
    weight = torch.ones(cells, device=device)
    if border > 0:
        edge = (torch.arange(border, device=device, dtype=torch.float32) + 1) / (border + 1)
        weight[:border] = edge
        weight[-border:] = torch.minimum(weight[-border:], edge.flip(0))
    return weight


@torch.no_grad()
def tiled_features(extractor: nn.Module, image: Tensor, tile: int, overlap: float = 0.25, batch: int = 4) -> Tensor:
    """Features ``1 x C x ceil(H / s) x ceil(W / s)`` of one image ``1 x 3 x H x W`` (any size) from
    tiles of ``tile`` pixels overlapping by ``overlap`` of a tile, ``batch`` tiles per extractor call.
    The image is padded (reflection) to whole feature cells and to at least one tile; the features
    of the padding are cropped off."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"tiled_features takes one image 1 x 3 x H x W, got {tuple(image.shape)}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    stride = int(extractor.stride)
    if tile % stride:
        raise ValueError(f"the tile ({tile}) must be a multiple of the extractor's stride ({stride})")
    height, width = image.shape[-2:]
    # padded to whole cells (so every tile starts on a cell) and to at least one tile
    pad_h = max(tile, math.ceil(height / stride) * stride) - height
    pad_w = max(tile, math.ceil(width / stride) * stride) - width
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    full_h, full_w = image.shape[-2:]
    step = max(stride, int(round(tile * (1.0 - overlap) / stride)) * stride)
    places = [(y, x) for y in tile_starts(full_h, tile, step) for x in tile_starts(full_w, tile, step)]
    cells = tile // stride
    border = max(0, (tile - step) // stride // 2)
    weight = ramp(cells, border, image.device)
    weight = weight[:, None] * weight[None, :]
    grid_h, grid_w = math.ceil(full_h / stride), math.ceil(full_w / stride)
    total = None
    norm = torch.zeros(grid_h, grid_w, device=image.device)
    for first in range(0, len(places), batch):
        group = places[first:first + batch]
        crops = torch.cat([image[..., y:y + tile, x:x + tile] for y, x in group])
        features = extractor(crops).float()
        if total is None:
            total = torch.zeros(features.shape[1], grid_h, grid_w, device=image.device)
        for (y, x), cell in zip(group, features):
            gy, gx = y // stride, x // stride
            total[:, gy:gy + cells, gx:gx + cells] += cell * weight
            norm[gy:gy + cells, gx:gx + cells] += weight
    stitched = total / norm.clamp_min(1e-12)
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    return stitched[None, :, :out_h, :out_w]
