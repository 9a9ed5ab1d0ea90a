"""focal-pl: FOCAL image-forgery detection and localization on PyTorch Lightning.

Kept import-light (no torch at import time) so that ``focal-pl --help`` answers at once;
import the submodules (``focal_pl.losses``, ``focal_pl.module``, ...) for the API.
"""

__version__ = "0.1.0"
