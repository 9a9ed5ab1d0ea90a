"""``focal-pl export``: a run's model (or the official FOCAL weights) as a release file and a model card."""

from __future__ import annotations

import sys
from typing import Any


def add_arguments(parser: Any, name: str) -> None:
    """A run folder or checkpoint (or --official FILE), and where to write the release."""
    parser.description = (
        "Export a model as a release file: the weights (with their sha256), the model config, the input size, the "
        "validation and test figures and the provenance, readable with torch.load(weights_only=True); a model card "
        "(Markdown) is written beside it. Use it with `focal-pl test / predict --weights NAME.pt` or "
        "`focal_pl.load('NAME.pt').localize(image)`. A run folder means its best checkpoint (docs/runs.md).")
    parser.add_argument("source", nargs="?", default=None, help="a run folder (its best checkpoint) or a .ckpt file")
    parser.add_argument("--out", required=True, help="the release file to write (NAME.pt)")
    parser.add_argument("--official", default=None, metavar="FILE",
                        help="convert an official FOCAL release (FOCAL_ViT_weights.pth / FOCAL_HRNet_weights.pth)")
    parser.add_argument("--image-size", dest="image_size", type=int | None, default=None,
                        help="the input size the model takes (default: the run's data.image_size; 1024 official)")


def run(args: Any, name: str) -> int:
    """Write NAME.pt (weights-only: torch.load(path, weights_only=True) reads it) and NAME.md."""
    if (args.source is None) == (args.official is None):
        print("focal-pl export: give a run folder or checkpoint, or --official FILE (one of the two)", file=sys.stderr)
        return 2
    from focal_pl.files.checkpoint import CheckpointError
    from focal_pl.release import ReleaseError, export

    try:
        target, card = export(args.source, args.out, official=args.official, image_size=args.image_size)
    except (ReleaseError, CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"focal-pl export: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"focal-pl export: could not write {error.filename or args.out}: {error.strerror or error}",
              file=sys.stderr)
        return 1
    print(f"wrote {target} and its model card {card}")
    return 0
