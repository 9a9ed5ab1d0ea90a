"""focal-pl: FOCAL image-forgery detection and localization on PyTorch Lightning.

Kept import-light (no torch at import time) so that ``focal-pl --help`` answers at once;
import the submodules (``focal_pl.losses``, ``focal_pl.module``, ...) for the API.
"""

import os

__version__ = "0.1.0"

# albumentations asks PyPI for a newer version at import: on a cluster node without internet that
# waits for a time-out. It has an opt-out; a user who wants the check can set the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def load(path, device="cpu"):
    """A released model (``focal-pl export``'s NAME.pt), ready to localize forgeries:
    ``mask, score_map, image_score = focal_pl.load("NAME.pt").localize("photo.jpg")``."""
    from focal_pl.release import load as load_release

    return load_release(path, device)
