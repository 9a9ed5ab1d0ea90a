"""MiT, SegFormer's Mix Transformer encoder (B0-B5), as a FOCAL extractor: the paper's Table V row.

timm has no MiT; segmentation-models-pytorch (a maintained package, the optional extra ``mit``:
``pip install focal-pl[mit]``) has the encoder itself. Its four levels (strides 4-32) are fused to
one grid by the same decoder as ``TimmBackbone`` (SegFormer's own decoder, without its class head).
Without the package, ``TimmBackbone("pvt_v2_b2")`` is the nearest stand-in (PVT-v2: the same
overlapping patch embedding and spatial-reduction attention, MiT's direct ancestor).
"""

from __future__ import annotations

from torch import Tensor

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.decoder import FusionDecoder
from focal_pl.extractors.weights import load_weights

VARIANTS = ("b0", "b1", "b2", "b3", "b4", "b5")


class MiT(Extractor):
    """SegFormer's MiT encoder (``mit_b0`` ... ``mit_b5`` of segmentation-models-pytorch, randomly
    initialized as the paper trains from scratch, or from a local weights file) + ``FusionDecoder``.

    Args:
        variant: b0 ... b5 (the paper does not say which; b2 is SegFormer's usual middle size).
        stride: the output grid's stride, one of 4, 8, 16, 32.
        out_dim: output channels.
        decoder_dim: channels of each level in the decoder (SegFormer: 256 for b0-b1, 768 above).
        weights: local path of the encoder's weights (segmentation-models-pytorch layout).
    """

    def __init__(self, variant: str = "b2", stride: int = 4, out_dim: int = 256, decoder_dim: int = 256,
                 weights: str | None = None) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        try:
            from segmentation_models_pytorch.encoders import get_encoder
        except ImportError as error:
            raise ImportError("MiT needs segmentation-models-pytorch: pip install 'focal-pl[mit]' (or use "
                              "TimmBackbone('pvt_v2_b2'), its nearest relative in timm)") from error
        self.encoder = get_encoder(f"mit_{variant}", weights=None)
        if weights:
            load_weights(self.encoder, weights)
        channels = list(self.encoder.out_channels)[2:]  # the input and an empty stride-2 level come first
        strides = [4, 8, 16, 32]
        if stride not in strides:
            raise ValueError(f"MiT has feature levels at strides {strides}, not {stride}")
        self.decoder = FusionDecoder(channels, strides, stride, out_dim, decoder_dim)
        self.stride = stride
        self.out_dim = out_dim

    def forward(self, images: Tensor) -> Tensor:
        size = (images.shape[-2] // self.stride, images.shape[-1] // self.stride)
        return self.decoder(list(self.encoder(images))[2:], size)
