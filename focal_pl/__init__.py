"""focal-pl: FOCAL image-forgery detection and localization on PyTorch Lightning.

Kept import-light (no torch at import time) so that ``focal-pl --help`` answers at once;
import the submodules (``focal_pl.losses``, ``focal_pl.module``, ...) for the API.
"""

import os

__version__ = "0.1.0"

# albumentations asks PyPI for a newer version at import: on a cluster node without internet that
# waits for a time-out. It has an opt-out; a user who wants the check can set the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
