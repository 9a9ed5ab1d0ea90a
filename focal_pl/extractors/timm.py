"""Any timm backbone as a FOCAL extractor: one feature level of ``features_only`` + a 1x1 projection."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.weights import load_weights


class TimmBackbone(Extractor):
    """``timm.create_model(name, features_only=True)``, the level at ``stride``, projected to ``out_dim``.

    Args:
        model_name: any timm model with ``features_only`` support (convnext_tiny, resnet50, ...).
        stride: reduction of the feature level to use (4 for 1/4 of the input).
        out_dim: channels after the 1x1 projection.
        weights: local path of the backbone's weights (timm layout); never downloaded.
        model_kwargs: extra arguments for ``timm.create_model`` (e.g. ``img_size``).
    """

    def __init__(
        self,
        model_name: str = "convnext_tiny",
        stride: int = 4,
        out_dim: int = 256,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm

        probe = timm.create_model(
            model_name, pretrained=False, features_only=True, **(model_kwargs or {})
        )
        strides = probe.feature_info.reduction()
        if stride not in strides:
            raise ValueError(f"{model_name} has feature levels at strides {strides}, not {stride}")
        index = probe.feature_info.out_indices[strides.index(stride)]
        del probe
        self.body = timm.create_model(
            model_name, pretrained=False, features_only=True, out_indices=(index,),
            **(model_kwargs or {}),
        )
        if weights:
            load_weights(self.body, weights)
        self.proj = nn.Conv2d(self.body.feature_info.channels()[0], out_dim, 1)
        self.stride = stride
        self.out_dim = out_dim

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(self.body(images)[0])
