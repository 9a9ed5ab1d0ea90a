"""Data: sources of (image, mask, meta), synthetic forgeries, shards, transforms and the DataModule.

Names are imported on first use, so that a loader or sharding worker that needs only the readers
does not pay for importing Lightning.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Augmentations": "focal_pl.data.transforms",
    "ForgeryDataModule": "focal_pl.data.datamodule",
    "ForgeryDataset": "focal_pl.data.datamodule",
    "Batch": "focal_pl.data.batch",
    "Item": "focal_pl.data.items",
    "collate": "focal_pl.data.batch",
    "ForgerySource": "focal_pl.data.sources",
    "Sample": "focal_pl.data.sources",
    "CASIA": "focal_pl.data.sources",
    "Columbia": "focal_pl.data.sources",
    "Coverage": "focal_pl.data.sources",
    "NIST16": "focal_pl.data.sources",
    "IMD2020": "focal_pl.data.sources",
    "MISD": "focal_pl.data.sources",
    "FaceForensics": "focal_pl.data.sources",
    "FolderPairs": "focal_pl.data.sources",
    "ImageFolder": "focal_pl.data.sources",
    "PristineFolder": "focal_pl.data.sources",
    "CatNetList": "focal_pl.data.sources",
    "BenCoJson": "focal_pl.data.sources",
    "FocalNpy": "focal_pl.data.sources",
    "PhotoPool": "focal_pl.data.synthetic",
    "SyntheticForgeries": "focal_pl.data.synthetic",
    "ShardSource": "focal_pl.data.shards",
    "StreamingShards": "focal_pl.data.shards",
    "write_shards": "focal_pl.data.shards",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'focal_pl.data' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
