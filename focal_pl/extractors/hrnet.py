"""HRNet extractor: timm's HRNet, highest-resolution stage-4 output at 1/4 of the input
(HRNet-W32: 32 x 256 x 256 at 1024, the official FOCAL feature map)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.weights import load_weights


def _keep_highest_resolution_output(body: nn.Module) -> None:
    """Drop the last module's fusions into the lower-resolution branches, as the pose HRNet does
    (``multi_scale_output=False``): their outputs are never used, they would cost compute, and
    parameters without gradients break DDP."""
    last = body.stage4[-1]
    last.fuse_layers = nn.ModuleList(last.fuse_layers[:1])


class HRNet(Extractor):
    """HRNet as a FOCAL extractor: B x 3 x H x W -> B x C x H/4 x W/4.

    Args:
        variant: timm HRNet width (``w32`` is the official one; ``w18_small`` is the CPU-test size).
        out_dim: optional 1x1 projection to this many channels (None keeps the branch's own width).
        weights: local path of timm, pose-HRNet or official-FOCAL weights; never downloaded.
    """

    stride = 4

    def __init__(
        self,
        variant: Literal[
            "w18_small", "w18_small_v2", "w18", "w30", "w32", "w40", "w44", "w48", "w64"
        ] = "w32",
        out_dim: int | None = None,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        import timm

        self.body = timm.create_model(
            f"hrnet_{variant}", pretrained=False, features_only=True, feature_location="",
            out_indices=(1,),
        )
        _keep_highest_resolution_output(self.body)
        channels = self.body.feature_info.channels()[0]
        if weights:
            load_weights(self.body, weights)
        self.proj = nn.Conv2d(channels, out_dim, 1) if out_dim else nn.Identity()
        self.out_dim = out_dim or channels

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(self.body(images)[0])
