"""Fusion of trained extractors without retraining (docs/method.md section 5): each member's features,
L2-normalized and resized to the first member's grid, concatenated along channels."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from focal_pl.files.checkpoint import read_submodule
from focal_pl.files.paths import must_exist
from focal_pl.extractors.base import Extractor


def _build(spec: dict[str, Any], path: str) -> Extractor:
    """An extractor from its ``class_path`` / ``init_args`` as a checkpoint stores it (no weights
    file is read: the checkpoint holds the trained weights)."""
    module_name, _, class_name = str(spec.get("class_path", "")).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"{path}: its extractor class {spec.get('class_path')!r} cannot be imported") from error
    if not (isinstance(cls, type) and issubclass(cls, Extractor)):
        raise ValueError(f"{path}: {spec.get('class_path')} is not a focal_pl Extractor")
    init = dict(spec.get("init_args") or {})
    if "weights" in init:
        init["weights"] = None
    return cls(**init)


RELEASE_FORMAT = "focal-pl-release/"  # a release file (focal-pl export) starts its ``format`` so


def released_extractor(file: Path) -> tuple[Any, dict[str, Tensor]] | None:
    """The extractor's config and weights of a release file (``focal-pl export``, the official FOCAL
    weights converted), None for a file that is no release (a checkpoint)."""
    try:
        content = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a release: the checkpoint reader says what it is
        return None
    if not (isinstance(content, dict) and str(content.get("format", "")).startswith(RELEASE_FORMAT)):
        return None
    spec = ((content.get("model") or {}).get("init_args") or {}).get("extractor")
    weights = content.get("weights") or {}
    return spec, {k[len("extractor."):]: v for k, v in weights.items() if k.startswith("extractor.")}


def extractor_from_checkpoint(path: str) -> Extractor:
    """The extractor of a focal-pl checkpoint or release file (its config travels in it), frozen, in
    eval mode.

    The checkpoint's ``extractor`` part (its config and weights, ``checkpoint_io.read_submodule``):
    the extractors package needs nothing from the training module for that.
    """
    file = Path(path).expanduser()
    must_exist(file, "fusion member", f"fusion member {file} does not exist")
    if not file.is_file():
        raise FileNotFoundError(f"fusion member {file} does not exist")
    spec, state = released_extractor(file) or read_submodule(file, "extractor")
    if not isinstance(spec, dict):
        raise ValueError(f"{file}: no extractor config in the checkpoint (trained from Python?); build "
                         "FusedExtractor(extractors=[...]) with the extractor objects instead")
    extractor = _build(spec, str(file))
    extractor.load_state_dict(state)
    extractor.eval()
    for parameter in extractor.parameters():
        parameter.requires_grad_(False)
    return extractor


class FusedExtractor(Extractor):
    """Several extractors as one: B x 3 x H x W -> B x (C1 + C2 + ...) x h1 x w1.

    Args:
        checkpoints: focal-pl checkpoints or release files (`focal-pl export`, the official weights
            converted) whose extractors are fused (e.g. a ViT and an HRNet).
        extractors: extractors given directly (Python use); appended after the checkpoints'.
        resize: how members are brought to the first one's grid: bilinear (default) or nearest
            (the official code's choice, which keeps every 4th HRNet pixel).
    """

    def __init__(
        self,
        checkpoints: list[str] | None = None,
        extractors: list[Extractor] | None = None,
        resize: Literal["bilinear", "nearest"] = "bilinear",
    ) -> None:
        super().__init__()
        members = [extractor_from_checkpoint(p) for p in checkpoints or []] + list(extractors or [])
        if len(members) < 1:
            raise ValueError("FusedExtractor needs at least one checkpoint or extractor")
        if resize not in ("bilinear", "nearest"):
            raise ValueError(f"resize must be 'bilinear' or 'nearest', got {resize!r}")
        self.members = torch.nn.ModuleList(members)
        self.resize = resize
        self.stride = members[0].stride
        self.out_dim = sum(self.member_channels)

    @property
    def member_channels(self) -> list[int]:
        """The channels of each member in the fused features (the clusterer's ``splits``)."""
        return [int(member.out_dim) for member in self.members]

    def forward(self, images: Tensor) -> Tensor:
        features = [F.normalize(member(images).float(), dim=1) for member in self.members]
        size = features[0].shape[-2:]
        aligned = [
            f if f.shape[-2:] == size
            else F.interpolate(f, size=size, mode=self.resize,
                               **({"align_corners": False} if self.resize == "bilinear" else {}))
            for f in features
        ]
        return torch.cat(aligned, dim=1)
