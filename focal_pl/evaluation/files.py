"""Small helpers the evaluation callbacks share: gathering rows across DDP ranks and unique file stems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from focal_pl.runs import safe_stem


def gather_rows(rows: list[Any], trainer: L.Trainer) -> list[Any]:
    """Every rank's rows on every rank (a no-op without distributed training)."""
    if trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return rows
    gathered: list[list[Any]] = [[] for _ in range(trainer.world_size)]
    torch.distributed.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part]


class UniqueStems:
    """Unique file stems per folder (two images may share a file name in different folders)."""

    def __init__(self) -> None:
        self.seen: dict[Path, set[str]] = {}

    def stem(self, folder: Path, name: str) -> str:
        stem = safe_stem(name)
        taken = self.seen.setdefault(folder, set())
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate)
        return candidate
