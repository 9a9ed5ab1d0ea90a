"""Data sources: anything that yields ``(image uint8 H x W x 3 RGB, mask uint8 H x W in {0,1}, meta)``.

Everything after a source (augmentation, resizing, batching, skipping bad files) is shared, so a
new data set layout is one small subclass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

Sample = tuple[np.ndarray, np.ndarray, dict[str, Any]]


class ForgerySource(Dataset):
    """Base class of data sources. Subclasses implement ``__len__``, ``load`` and ``describe``.

    ``load`` may raise on bad input (a corrupt file, a missing mask): the data pipeline reports the
    item by ``describe(index)`` (its file, for file-based sources) and skips it.
    """

    name: str = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def __getitem__(self, index: int) -> Sample:
        return self.load(index)
