"""Weights in the layouts of the files users bring (SAM's image encoder, the official FOCAL
releases), made here from small models with non-trivial values."""

from __future__ import annotations

import torch

from focal_pl.extractors import HRNet, SamViT


def randomized(model: SamViT) -> SamViT:
    """Non-trivial weights: relative positions (zeros at init) as large as the dot products."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_pos" in name:
                p.normal_(std=0.5)
            elif name.endswith("bias"):
                p.normal_(std=0.1)
    return model


def sam_layout(state: dict, prefix: str = "image_encoder.") -> dict:
    """SAM's names (``mlp.lin1``) under ``prefix``, plus the prompt encoder SAM files also hold."""
    out = {prefix + k.replace("mlp.fc", "mlp.lin"): v for k, v in state.items()}
    out[prefix.replace("image_encoder.", "") + "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = (
        torch.zeros(2, 128))
    return out


def official_hrnet(variant: str = "w18_small") -> tuple[HRNet, dict]:
    """An HRNet with random weights and its state dict as FOCAL_HRNet_weights.pth holds it
    (DataParallel's ``module.``, FOCAL's ``net.``, the pose HRNet's names and its unused head)."""
    source = HRNet(variant)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    state = {"module.net." + k: v for k, v in source.body.state_dict().items()}
    state["module.net.final_layer.weight"] = torch.zeros(17, 32, 1, 1)  # the pose head, unused
    return source, state


def official_vit() -> tuple[SamViT, dict]:
    """A tiny SAM ViT with non-trivial weights and its state dict as FOCAL_ViT_weights.pth holds it
    (``module.net.image_encoder.`` + SAM's names, the prompt encoder beside it)."""
    source = randomized(SamViT("tiny", img_size=64))
    return source, sam_layout(source.body.state_dict(), "module.net.image_encoder.")
