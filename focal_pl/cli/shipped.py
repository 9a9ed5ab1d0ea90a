"""The configs and sweep files shipped with the package, found by bare name from any folder.

``focal-pl fit --config vit.yaml`` works anywhere: a ``--config`` value that is not a file here is
looked up among the shipped configs. Each shipped file describes itself in its first comment line.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]  # focal_pl/, which holds configs/ and sweeps/


def configs_dir() -> Path:
    """Folder of the configs installed with the package."""
    return PACKAGE / "configs"


def sweeps_dir() -> Path:
    """Folder of the W&B sweep files installed with the package."""
    return PACKAGE / "sweeps"


def shipped_configs() -> list[str]:
    """Names of the shipped configs, relative to ``configs_dir()``."""
    base = configs_dir()
    return sorted(str(p.relative_to(base)) for p in base.rglob("*.yaml"))


def find_shipped(value: str, folder: Path, *, by_name: bool = False) -> Path | None:
    """The shipped file ``value`` names in ``folder`` (``.yaml`` optional; with ``by_name`` also a
    path elsewhere matched by its file name alone), or None."""
    names = [value, *([Path(value).name] if by_name else []), f"{value}.yaml"]
    return next((folder / name for name in names if (folder / name).is_file()), None)


def resolve_config(value: str) -> str:
    """A config path as given when it exists, else the shipped config of that name (``.yaml``
    optional), else unchanged so that the parser reports the missing file."""
    if Path(value).exists():
        return value
    found = find_shipped(value, configs_dir())
    return str(found) if found else value


def description(path: Path) -> str:
    """A shipped file's description: the first sentence of its leading comment, however many
    lines it spans (indented comment lines, usually commands, end it)."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if not text.strip() or (words and text.startswith("   ")):
            break
        words.append(text.strip())
    joined = " ".join(words)
    end = re.search(r"(?<!e\.g)(?<!i\.e)(?<=[\w)\]`'])\.(\s|$)", joined)
    return joined[: end.start() + 1] if end else joined


def catalogue() -> str:
    """``focal-pl configs``: every shipped config and sweep file with its description."""
    sweeps = sorted(sweeps_dir().glob("*.yaml"))
    width = max(len(name) for name in [*shipped_configs(), *(p.name for p in sweeps)]) + 4
    columns = max(80, shutil.get_terminal_size((120, 24)).columns)

    def entry(name: str, path: Path) -> str:
        return textwrap.fill(description(path), columns, initial_indent=f"  {name}".ljust(width),
                             subsequent_indent=" " * width)

    lines = ["Configs (focal-pl fit --config NAME; data/ and logger/ ones are laid over a model config):"]
    lines += [entry(name, configs_dir() / name) for name in shipped_configs()]
    lines.append("Sweeps (focal-pl sweep NAME, or wandb sweep + wandb agent):")
    lines += [entry(path.name, path) for path in sweeps]
    return "\n".join(lines)


def add_arguments(parser: Any, name: str) -> None:
    """``focal-pl configs`` takes no argument."""


def run(args: Any, name: str) -> int:
    """Print the catalogue."""
    print(catalogue())
    return 0
