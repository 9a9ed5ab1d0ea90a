"""Any timm backbone as a FOCAL extractor: the whole network (every ``features_only`` level) fused
to one grid by a light decoder."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.decoder import FusionDecoder
from focal_pl.extractors.weights import load_weights


class TimmBackbone(Extractor):
    """``timm.create_model(name, features_only=True)``: all its feature levels, brought to the
    stride-``stride`` grid and fused to ``out_dim`` channels (``FusionDecoder``, SegFormer's).

    Keeping one level would cut the network there: ``convnext_base`` at stride 4 keeps 0.46 M of
    its 88.6 M parameters (its stem and first stage), ``pvt_v2_b2`` 1.08 M of 25.4 M.

    Args:
        model_name: any timm model with ``features_only`` support (convnext_base, pvt_v2_b2, resnet50, ...).
        stride: the output grid's stride, one of the model's level strides (4: 1/4 of the input).
        out_dim: output channels.
        decoder_dim: channels of each level in the decoder.
        weights: local path of the backbone's weights (timm layout); never downloaded.
        model_kwargs: extra arguments for ``timm.create_model`` (e.g. ``img_size``).
    """

    def __init__(
        self,
        model_name: str = "convnext_tiny",
        stride: int = 4,
        out_dim: int = 256,
        decoder_dim: int = 256,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm

        self.body = timm.create_model(model_name, pretrained=False, features_only=True, **(model_kwargs or {}))
        strides = self.body.feature_info.reduction()
        if stride not in strides:
            raise ValueError(f"{model_name} has feature levels at strides {strides}, not {stride}")
        if weights:
            load_weights(self.body, weights)
        self.decoder = FusionDecoder(self.body.feature_info.channels(), strides, stride, out_dim, decoder_dim)
        self.stride = stride
        self.out_dim = out_dim

    def forward(self, images: Tensor) -> Tensor:
        size = (images.shape[-2] // self.stride, images.shape[-1] // self.stride)
        return self.decoder(self.body(images), size)
