"""SAM-style ViT extractor: timm's ``samvit_*`` image encoders (windowed attention, relative
positions, neck to ``out_dim`` channels), B x 3 x H x W -> B x out_dim x H/16 x W/16.

The encoders are built by timm's own entry points and weight files go through timm's
``checkpoint_filter_fn``; the attention runs on PyTorch's fused SDPA kernels by default
(:mod:`focal_pl.extractors.sam_attention`), ``attention="timm"`` keeps timm's own code path.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from torch import Tensor, nn

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.sam_attention import use_fused_attention
from focal_pl.extractors.weights import LoadReport, StateDict, load_weights

# size -> timm entry point and what it overrides ("tiny" is for CPU tests, SAM's base/large/huge are timm's own)
SAM_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny": ("samvit_base_patch16", {"embed_dim": 64, "depth": 4, "num_heads": 2, "global_attn_indexes": (1, 3)}),
    "base": ("samvit_base_patch16", {}),
    "large": ("samvit_large_patch16", {}),
    "huge": ("samvit_huge_patch16", {}),
}
ATTENTION = ("fused", "timm")
SAM_ANCHOR = "image_encoder.patch_embed.proj.weight"


def to_timm_layout(state: StateDict, model: nn.Module) -> StateDict:
    """SAM (``image_encoder.``, ``mlp.lin1``), official-FOCAL (``module.net.image_encoder.``) or timm
    keys -> timm's names: whatever precedes ``image_encoder.`` is cut, then timm's own
    ``checkpoint_filter_fn`` renames (and drops SAM's prompt encoder and mask decoder)."""
    from timm.models.vision_transformer_sam import checkpoint_filter_fn

    prefixes = {key[: -len(SAM_ANCHOR)] for key in state if key.endswith(SAM_ANCHOR)}
    prefixes = {p for p in prefixes if not p or p.endswith(".")}
    if len(prefixes) == 1 and (prefix := prefixes.pop()):
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    return checkpoint_filter_fn(state, model)


class SamViT(Extractor):
    """The SAM image encoder as a FOCAL extractor (the paper's: ``size="large"`` at 1024 -> 256 x 64 x 64).

    Args:
        size: tiny | base | large | huge (timm's ``samvit_{size}_patch16``; tiny: 64 wide, 4 blocks).
        img_size: input side the position embeddings are built for (other sizes are resampled).
        out_dim: channels of the neck, i.e. of the features.
        window_size: side of the local attention windows (14 in SAM).
        weights: local path of SAM, official-FOCAL or timm weights; never downloaded. What loaded
            and what did not is in ``load_report``; a file of which nothing fits raises ``ValueError``.
        drop_path_rate: stochastic depth.
        grad_checkpointing: trade compute for activation memory.
        attention: ``fused`` folds the relative positions into one maskless SDPA call in the
            input dtype (flash / memory-efficient kernels on CUDA); ``timm`` is timm's own path
            (3-d q/k/v with a B*heads x N x N bias as mask: SDPA's math kernel on CUDA). Same
            parameters and state dict, same results up to rounding.
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
        attention: Literal["fused", "timm"] = "fused",
    ) -> None:
        super().__init__()
        import timm

        if size not in SAM_VARIANTS:
            raise ValueError(f"size must be one of {sorted(SAM_VARIANTS)}, got {size!r}")
        if img_size % self.stride:
            raise ValueError(f"img_size must be a multiple of {self.stride}, got {img_size}")
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {attention!r}")
        entry, overrides = SAM_VARIANTS[size]
        self.body = timm.create_model(
            entry, pretrained=False, img_size=img_size, window_size=window_size, neck_chans=out_dim,
            num_classes=0, global_pool="", drop_path_rate=drop_path_rate, **overrides,
        )
        self.body.set_grad_checkpointing(grad_checkpointing)
        self.attention = attention
        if attention == "fused":
            use_fused_attention(self.body)
        self.out_dim = out_dim
        self.load_report: LoadReport | None = None
        if weights:
            self.load_report = load_weights(self.body, weights, remap=partial(to_timm_layout, model=self.body))

    def forward(self, images: Tensor) -> Tensor:
        return self.body.forward_features(images)
