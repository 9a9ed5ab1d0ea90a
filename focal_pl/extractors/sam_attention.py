"""The attention of timm's SAM ViT blocks on PyTorch's fused ``scaled_dot_product_attention`` kernels.

timm's ``vision_transformer_sam.Attention`` adds SAM's decomposed relative positions as a float
``attn_mask`` of B*heads x N x N to SDPA called on 3-d q/k/v. On CUDA the fused kernels (flash,
memory-efficient, cuDNN) take only 4-d inputs and flash takes no mask, so every block falls back to
the math kernel, and each global block materialises (and back-propagates) a 4096 x 4096 bias per
head at 1024 px.

Here the relative positions are folded into the dot product instead, so no bias exists at all.
With query (row, column) = (i, j), key (row, column) = (k, l), SAM's score is

    scale * q.k + Rh[i, k].q + Rw[j, l].q

and with ``q' = [scale * q, (Rh[i, :] q), (Rw[j, :] q)]`` (head_dim + H + W values) and
``k' = [k, onehot(k), onehot(l)]`` the plain dot product ``q'.k'`` is exactly that score. SDPA then
runs with ``scale=1`` and no mask; v is zero-padded to the width of q' (flash wants one head
dimension for q, k and v; widths are padded to a multiple of 8) and the output is cut back to
head_dim. At 1024 px, ViT-L's widths are 64 + 14 + 14 -> 96 in the windowed blocks and
64 + 64 + 64 = 192 in the global ones, both within flash attention's 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def rel_pos_table(size: int, rel_pos: Tensor) -> Tensor:
    """``size x size x C`` embeddings of the offsets ``query - key`` along one axis (SAM's
    ``get_rel_pos`` for equal query and key sizes), indexed on the table's own device."""
    if rel_pos.shape[0] != 2 * size - 1:  # a grid other than the one built for: timm interpolates
        from timm.models.vision_transformer_sam import get_rel_pos

        return get_rel_pos(size, size, rel_pos)
    steps = torch.arange(size, device=rel_pos.device)
    return rel_pos[steps[:, None] - steps[None, :] + (size - 1)]


def fold_rel_pos(
    q: Tensor, k: Tensor, v: Tensor, rel_pos_h: Tensor, rel_pos_w: Tensor, grid: tuple[int, int], scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """q', k', v' (B x heads x H*W x D', D' = head_dim + H + W rounded up to 8) whose plain dot
    products ``q'.k'`` are ``scale * q.k`` plus SAM's decomposed relative-position bias; all in q's dtype."""
    batch, heads, tokens, dim = q.shape
    height, width = grid
    dtype, device = q.dtype, q.device
    table_h = rel_pos_table(height, rel_pos_h).to(dtype)  # query row x key row x dim
    table_w = rel_pos_table(width, rel_pos_w).to(dtype)
    rows = q.reshape(batch, heads, height, width, dim)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", rows, table_h).reshape(batch, heads, tokens, height)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", rows, table_w).reshape(batch, heads, tokens, width)
    extra = height + width
    pad = -(dim + extra) % 8
    steps_h = torch.arange(height, device=device)
    steps_w = torch.arange(width, device=device)
    key_pos = torch.cat(
        [
            (steps_h.repeat_interleave(width)[:, None] == steps_h).to(dtype),  # one-hot row of each key
            (steps_w.repeat(height)[:, None] == steps_w).to(dtype),  # one-hot column
            torch.zeros(tokens, pad, dtype=dtype, device=device),
        ],
        dim=-1,
    )  # tokens x (H + W + pad), the same for every image and head
    q = torch.cat([q * scale, rel_h, rel_w, q.new_zeros(1, 1, 1, pad).expand(batch, heads, tokens, pad)], dim=-1)
    k = torch.cat([k, key_pos.expand(batch, heads, tokens, extra + pad)], dim=-1)
    v = F.pad(v, (0, extra + pad))
    return q, k, v


class FusedSamAttention(nn.Module):
    """timm's SAM ``Attention`` (x: B x H x W x C -> B x H x W x C) computed by :func:`fold_rel_pos`
    and one maskless SDPA call in the input dtype. It takes over the timm module's own parameters
    and sub-modules, so state-dict keys, weights and initialisation stay timm's."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        if getattr(attn, "rope", None) is not None:
            raise ValueError("FusedSamAttention supports relative positions, not rotary embeddings")
        self.num_heads: int = attn.num_heads
        self.head_dim: int = attn.head_dim
        self.scale: float = attn.scale
        self.use_rel_pos: bool = attn.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h = attn.rel_pos_h
            self.rel_pos_w = attn.rel_pos_w
        self.qkv = attn.qkv
        self.q_norm = attn.q_norm
        self.k_norm = attn.k_norm
        self.attn_drop = attn.attn_drop
        self.proj = attn.proj
        self.proj_drop = attn.proj_drop

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, channels = x.shape
        tokens = height * width
        qkv = self.qkv(x.reshape(batch, tokens, channels))
        q, k, v = qkv.view(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        dropout = self.attn_drop.p if self.training else 0.0
        if self.use_rel_pos:
            q, k, v = fold_rel_pos(q, k, v, self.rel_pos_h, self.rel_pos_w, (height, width), self.scale)
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=1.0)[..., : self.head_dim]
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
        out = out.transpose(1, 2).reshape(batch, height, width, channels)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, head_dim={self.head_dim}, rel_pos={self.use_rel_pos}"


def use_fused_attention(model: nn.Module) -> int:
    """Replace every timm SAM ``Attention`` inside ``model`` by :class:`FusedSamAttention` (same
    parameters); returns how many were replaced."""
    from timm.models.vision_transformer_sam import Attention

    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, Attention)
    ]
    for parent, name, child in targets:
        setattr(parent, name, FusedSamAttention(child))
    return len(targets)
