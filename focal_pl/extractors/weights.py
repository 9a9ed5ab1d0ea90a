"""Loading pretrained weights from a local file into an extractor, reporting what did not match.

Weights never come from the network: the config names a file. Checkpoints of SAM, of the official
FOCAL code (``module.net.`` prefixes), timm ``.safetensors`` files and focal-pl's own Lightning
checkpoints all load: the key prefix that makes the most keys match is found and stripped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from focal_pl.files.paths import collecting, must_exist

log = logging.getLogger(__name__)

StateDict = dict[str, Tensor]


@dataclass
class LoadReport:
    """What a weights file gave a module: loaded keys, and the ones that did not fit."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def head(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")

        parts = [f"loaded {len(self.loaded)} tensors from {self.path}"]
        for name, keys in (
            ("missing", self.missing), ("unexpected", self.unexpected),
            ("shape-mismatched", self.mismatched),
        ):
            if keys:
                parts.append(f"{len(keys)} {name} ({head(keys)})")
        return "; ".join(parts)


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a ``.pth``/``.pt``/``.ckpt``/``.bin`` (``weights_only=True``) or ``.safetensors`` file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors name neither the file nor the cause plainly
            raise ValueError(f"{path} is not a readable torch weights file: {error}") from error
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict of tensors (found {type(obj).__name__})")
    return dict(obj)


def strip_common_prefix(state: StateDict, targets: set[str]) -> StateDict:
    """Drop the key prefix (e.g. ``module.net.``) under which the most keys match ``targets``."""
    votes: Counter[str] = Counter()
    for key in state:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in targets:
                votes[".".join(parts[:i])] += 1
                break
    if not votes:
        return state
    prefix = votes.most_common(1)[0][0]
    if not prefix:
        return state
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def load_weights(
    module: nn.Module,
    path: str | Path,
    remap: Callable[[StateDict], StateDict] | None = None,
) -> LoadReport:
    """Load ``path`` into ``module`` non-strictly and log the missing / unexpected keys.

    ``remap`` renames keys of a foreign layout first (e.g. SAM's ``mlp.lin1`` -> timm's ``mlp.fc1``).
    Raises ``ValueError`` naming the file when not a single tensor fits: that is the wrong file.
    """
    must_exist(path, "weights file", f"weights file {Path(path).expanduser()} does not exist")
    if collecting() and not Path(path).expanduser().is_file():  # said with the other missing files
        return LoadReport(path=str(path))
    state = read_state_dict(path)
    if remap is not None:
        state = remap(state)
    own = module.state_dict()
    state = strip_common_prefix(state, set(own))
    report = LoadReport(path=str(path))
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}")
        else:
            usable[key] = value
    if not usable:
        sample = ", ".join(list(state)[:5])
        raise ValueError(
            f"no tensor of {path} fits {type(module).__name__} ({len(state)} keys such as {sample})"
        )
    module.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(set(own) - set(usable))
    if report.missing or report.unexpected or report.mismatched:
        log.warning(report.summary())
    else:
        log.info(report.summary())
    return report
