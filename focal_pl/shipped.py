"""The configs and sweep files shipped with the package, found by bare name from any folder.

``focal-pl fit --config vit.yaml`` works anywhere: a ``--config`` value that is not a file here is
looked up among the shipped configs. Each shipped file describes itself in its first comment line.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


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
    """A shipped file's one-line description: its first comment line."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def catalogue() -> str:
    """``focal-pl configs``: every shipped config and sweep file with its description."""
    lines = ["Configs (focal-pl fit --config NAME; data/ and logger/ ones are laid over a model config):"]
    width = max(len(name) for name in shipped_configs())
    for name in shipped_configs():
        lines.append(f"  {name:<{width}}  {description(configs_dir() / name)}")
    lines.append("Sweeps (focal-pl sweep NAME, or wandb sweep + wandb agent):")
    for path in sorted(sweeps_dir().glob("*.yaml")):
        lines.append(f"  {path.name:<{width}}  {description(path)}")
    return "\n".join(lines)
