"""focal-pl: FOCAL image-forgery detection and localization on PyTorch Lightning.

Kept import-light (no torch at import time) so that ``focal-pl --help`` answers at once; import
the submodules (``focal_pl.losses``, ``focal_pl.module``, ...) for the API. Two entry points live
here, each imported on first use: ``focal_pl.load`` (a released model, ready to localize) and
``focal_pl.trainer`` (a Lightning Trainer with the run's callbacks).
"""

from __future__ import annotations

import os
from typing import Any

__version__ = "0.1.0"

# albumentations asks PyPI for a newer version at import: on a cluster node without internet that
# waits for a time-out. It has an opt-out; a user who wants the check can set the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def load(path: str | os.PathLike, device: str = "cpu", clusterer: Any = None, mask_resize: str | None = None) -> Any:
    """A released model (a ``focal-pl export`` file), ready to localize:
    ``result = focal_pl.load("NAME.pt").localize("photo.jpg")``. ``clusterer`` / ``mask_resize``
    replace the release's (the official code's: ``Clusterer(algorithm="cosine_kmeans")``, ``"bilinear"``)."""
    from focal_pl.release import load as load_release

    return load_release(path, device, clusterer, mask_resize)


def trainer(*args: Any, **kwargs: Any) -> Any:
    """A Lightning ``Trainer`` with the run's callbacks and run folder (``focal_pl.engine.trainer``)."""
    from focal_pl.engine import trainer as make_trainer

    return make_trainer(*args, **kwargs)
