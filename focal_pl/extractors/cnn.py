"""A small from-scratch CNN for CPU runs: the demo, the loss benchmark and the tests."""

from __future__ import annotations

from torch import Tensor, nn

from focal_pl.extractors.base import Extractor


class ForensicCNN(Extractor):
    """Plain 3x3 conv stack that keeps full resolution first (where noise traces live), then
    halves it ``log2(stride)`` times and projects to ``out_dim``: B x 3 x H x W -> B x out_dim x H/s x W/s.

    ``padding_mode="reflect"`` (default) keeps the image border's features like the interior's;
    with zero padding an untrained or briefly trained net gives the border a feature cluster of
    its own, which the clustering then calls forged.
    """

    def __init__(
        self, width: int = 32, depth: int = 6, out_dim: int = 64, stride: int = 4,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        downs = stride.bit_length() - 1
        if stride < 1 or 1 << downs != stride:
            raise ValueError(f"stride must be a power of two, got {stride}")
        if depth < downs + 2:
            raise ValueError(f"depth {depth} is too small for stride {stride} (need {downs + 2})")
        layers: list[nn.Module] = []
        channels = 3
        for i in range(depth - 1):
            step = 2 if 0 < i <= downs else 1
            out = width * (2 if i > downs else 1)
            layers += [
                nn.Conv2d(channels, out, 3, stride=step, padding=1, bias=False, padding_mode=padding_mode),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        layers.append(nn.Conv2d(channels, out_dim, 1))
        self.net = nn.Sequential(*layers)
        self.stride = stride
        self.out_dim = out_dim

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)
