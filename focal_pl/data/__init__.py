"""Data: sources of (image, mask, meta), synthetic forgeries, transforms and the DataModule."""

from focal_pl.data.datamodule import ForgeryDataModule, ForgeryDataset, collate
from focal_pl.data.sources import ForgerySource, Sample
from focal_pl.data.synthetic import PhotoPool, SyntheticForgeries
from focal_pl.data.transforms import Augmentations

__all__ = [
    "Augmentations",
    "ForgeryDataModule",
    "ForgeryDataset",
    "ForgerySource",
    "PhotoPool",
    "Sample",
    "SyntheticForgeries",
    "collate",
]
