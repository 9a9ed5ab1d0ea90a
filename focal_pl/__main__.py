"""``python -m focal_pl`` = the ``focal-pl`` command."""

import sys

from focal_pl.cli import main

sys.exit(main())
