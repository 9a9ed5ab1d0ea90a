"""Native-resolution features: tiles of the training size over the full image, stitched so that an
extractor whose cells see only their own pixels gives exactly its whole-image features, for any
image size and overlap; and the data module keeps test / predict images at their own size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.tiles import tile_starts, tiled_features


class CellWise(Extractor):
    """Each 4 x 4 cell's features from its own pixels only (no context): tiling cannot change them."""

    stride = 4
    out_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 4, stride=4)

    def forward(self, images):
        return torch.tanh(self.conv(images))


@pytest.mark.parametrize("height, width", [(64, 64), (100, 172), (37, 50), (256, 96)])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_stitched_tiles_equal_the_whole_image_for_a_cellwise_extractor(height, width, overlap):
    extractor = CellWise()
    image = torch.rand(1, 3, height, width)
    tiled = tiled_features(extractor, image, tile=32, overlap=overlap, batch=3)
    padded = torch.nn.functional.pad(image, (0, -width % 4, 0, -height % 4), mode="reflect")  # as the tiles are
    whole = extractor(padded)
    assert tiled.shape == (1, 6, -(-height // 4), -(-width // 4))
    assert torch.allclose(tiled, whole[..., : tiled.shape[-2], : tiled.shape[-1]], atol=1e-6)


def test_tiles_cover_the_image_and_overlaps_blend():
    assert tile_starts(100, 32, 24) == [0, 24, 48, 68] and tile_starts(20, 32, 24) == [0]
    # an extractor with context sees a different neighbourhood in each tile: the overlap is a blend,
    # between the tiles' values, never a seam of one tile's edge
    conv = nn.Conv2d(3, 2, 9, stride=4, padding=4)

    class WithContext(Extractor):
        stride, out_dim = 4, 2

        def forward(self, images):
            return conv(images)

    image = torch.rand(1, 3, 64, 96)
    a = tiled_features(WithContext(), image, tile=32, overlap=0.5)
    assert a.shape == (1, 2, 16, 24) and torch.isfinite(a).all()
    with pytest.raises(ValueError, match="multiple of the extractor's stride"):
        tiled_features(WithContext(), image, tile=30)


def test_native_resolution_keeps_each_image_its_size(tmp_path):
    from PIL import Image

    from focal_pl.data import ForgeryDataModule
    from focal_pl.data.sources import ImageFolder

    for i, size in enumerate([(50, 70), (90, 40)]):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(tmp_path / f"{i}.png")
    module = ForgeryDataModule(predict=ImageFolder(str(tmp_path)), image_size=32, num_workers=0, native_resolution=True)
    batches = list(module.predict_dataloader())
    assert [tuple(b.image.shape) for b in batches] == [(1, 3, 50, 70), (1, 3, 90, 40)]
    assert all(b.tile == 32 for b in batches)
    squashed = ForgeryDataModule(predict=ImageFolder(str(tmp_path)), image_size=32, num_workers=0)
    assert [tuple(b.image.shape) for b in squashed.predict_dataloader()] == [(2, 3, 32, 32)]
    assert next(iter(squashed.predict_dataloader())).tile is None
