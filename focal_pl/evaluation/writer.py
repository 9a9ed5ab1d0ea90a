"""The files evaluation writes per image, in one way for test and predict: the mask, the score map
and (for predict) an overlay on the image, as PNGs with unique names; and the rows of every DDP rank
gathered for the tables."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from focal_pl.evaluation.pictures import overlay
from focal_pl.training.runs import safe_stem


def gather_rows(rows: list[Any], trainer: L.Trainer) -> list[Any]:
    """Every rank's rows on every rank (a no-op without distributed training)."""
    if trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return rows
    gathered: list[list[Any]] = [[] for _ in range(trainer.world_size)]
    torch.distributed.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part]


class ImageFiles:
    """Writes each image's ``<stem>_mask.png`` (white = forged), ``<stem>_score.png`` (the uint8 score
    map, the values the metrics read) and, given the picture, ``<stem>_overlay.png`` into a folder under
    ``root``. Stems are unique per folder (two images may share a file name in different folders) and
    safe to take from several threads (predict finishes images on host threads)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._taken: dict[Path, set[str]] = {}
        self._lock = threading.Lock()

    def stem(self, folder: Path, name: str) -> str:
        """A stem for ``name`` in ``folder`` that no earlier image there has."""
        stem = safe_stem(name)
        with self._lock:
            taken = self._taken.setdefault(folder, set())
            candidate, n = stem, 1
            while candidate in taken:
                n += 1
                candidate = f"{stem}_{n}"
            taken.add(candidate)
        return candidate

    def write(self, name: str, mask: Tensor, score: Tensor, picture: np.ndarray | None = None,
              folder: str | Path = ".") -> dict[str, str]:
        """Write one image's files; returns their paths relative to ``root`` (``mask_file``,
        ``score_file`` and, with a picture, ``overlay_file``)."""
        where = self.root / folder
        where.mkdir(parents=True, exist_ok=True)
        stem = self.stem(where, name)
        files = {"mask_file": f"{stem}_mask.png", "score_file": f"{stem}_score.png"}
        Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(where / files["mask_file"])
        Image.fromarray(score.numpy()).save(where / files["score_file"])
        if picture is not None:
            files["overlay_file"] = f"{stem}_overlay.png"
            Image.fromarray(overlay(picture, mask)).save(where / files["overlay_file"])
        return {key: str((where / value).relative_to(self.root)) for key, value in files.items()}
