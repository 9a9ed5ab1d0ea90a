"""SAM-style ViT extractor: timm's ``VisionTransformerSAM`` image encoder (windowed attention,
relative positions, neck to ``out_dim`` channels), B x 3 x H x W -> B x out_dim x H/16 x W/16."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.weights import StateDict, load_weights

# embed_dim, depth, num_heads, global attention blocks (the SAM encoders; "tiny" is for CPU tests)
SAM_SIZES: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "tiny": (64, 4, 2, (1, 3)),
    "base": (768, 12, 12, (2, 5, 8, 11)),
    "large": (1024, 24, 16, (5, 11, 17, 23)),
    "huge": (1280, 32, 16, (7, 15, 23, 31)),
}


def sam_to_timm(state: StateDict) -> StateDict:
    """SAM / official FOCAL keys (``image_encoder.``, ``mlp.lin1``) to timm's names."""
    return {k.replace("mlp.lin", "mlp.fc"): v for k, v in state.items()}


class SamViT(Extractor):
    """The SAM image encoder as a FOCAL extractor (the paper's: ``size="large"`` at 1024 -> 256 x 64 x 64).

    Args:
        size: tiny | base | large | huge.
        img_size: input side the position embeddings are built for (other sizes are resampled).
        out_dim: channels of the neck, i.e. of the features.
        window_size: side of the local attention windows (14 in SAM).
        weights: local path of SAM, official-FOCAL or timm weights; never downloaded.
        drop_path_rate: stochastic depth.
        grad_checkpointing: trade compute for activation memory.
    """

    stride = 16

    def __init__(
        self,
        size: Literal["tiny", "base", "large", "huge"] = "large",
        img_size: int = 1024,
        out_dim: int = 256,
        window_size: int = 14,
        weights: str | None = None,
        drop_path_rate: float = 0.0,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer_sam import VisionTransformerSAM

        if size not in SAM_SIZES:
            raise ValueError(f"size must be one of {sorted(SAM_SIZES)}, got {size!r}")
        if img_size % self.stride:
            raise ValueError(f"img_size must be a multiple of {self.stride}, got {img_size}")
        embed_dim, depth, heads, global_blocks = SAM_SIZES[size]
        self.body = VisionTransformerSAM(
            img_size=img_size, patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=heads,
            global_attn_indexes=global_blocks, window_size=window_size, use_rel_pos=True,
            neck_chans=out_dim, num_classes=0, global_pool="", drop_path_rate=drop_path_rate,
        )
        self.body.set_grad_checkpointing(grad_checkpointing)
        self.out_dim = out_dim
        if weights:
            load_weights(self.body, weights, remap=sam_to_timm)

    def forward(self, images: Tensor) -> Tensor:
        return self.body.forward_features(images)
