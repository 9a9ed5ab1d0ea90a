"""The checks before any training or testing starts: every file and folder a resolved config names
(data roots, shard folders, list files, weights files, fused checkpoints, ``--ckpt_path``,
``--weights``) is looked up at once, so that all the problems are said together, one line each,
before a process builds a model or reads a batch (``fit``, ``test``, ``validate``, ``predict``,
``ablate`` and ``sweep`` run it, through ``focal_pl.cli.runner.check_commands``), instead of one
at a time after minutes of work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the constructor arguments that name a file or folder that must exist, and what each is
PATH_ARGUMENTS = {"root": "root", "images": "images folder", "masks": "masks folder", "path": "file",
                  "paths": "shard folder", "weights": "weights file", "checkpoints": "checkpoint"}
# shipped configs name no folder; these are their stand-ins for a user's data (not checked)
PLACEHOLDERS = ("/data/",)


def path_arguments(class_path: str) -> tuple[str, ...]:
    """The constructor arguments of a class that name a path that must exist: its own
    ``path_arguments`` when it says (FF++'s ``masks`` is a subfolder's name), else ``PATH_ARGUMENTS``."""
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        return tuple(getattr(getattr(importlib.import_module(module), name), "path_arguments", PATH_ARGUMENTS))
    except (ImportError, AttributeError, ValueError):
        return tuple(PATH_ARGUMENTS)


def named_paths(node: Any, key: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, what it is, path) of every path-naming argument in a config tree (class specs
    with ``init_args``, lists of them, plain sections)."""
    found: list[tuple[str, str, str]] = []
    if isinstance(node, dict):
        args = node.get("init_args") if isinstance(node.get("init_args"), dict) else None
        if args is not None:
            kind = str(node.get("class_path", "")).rsplit(".", 1)[-1]
            checked = path_arguments(str(node.get("class_path", "")))
            for name, value in args.items():
                if name in checked and value:
                    what = f"{kind} {PATH_ARGUMENTS[name]}".strip()
                    for path in value if isinstance(value, list) else [value]:
                        if isinstance(path, str):
                            found.append((f"{key}.init_args.{name}", what, path))
        for name, value in node.items():
            if name != "init_args" or args is None:
                found += named_paths(value, f"{key}.{name}" if key else name)
            else:
                found += [item for sub, val in value.items()
                          for item in named_paths(val, f"{key}.init_args.{sub}") if isinstance(val, (dict, list))]
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += named_paths(value, f"{key}.{i}")
    return found


def missing(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(line, path) of each missing file or folder the config names: ``key: what PATH does not exist``."""
    found = []
    for key, what, path in named_paths(config):
        if Path(path).expanduser().exists():
            continue
        hint = " (make it with `focal-pl data shard`)" if what.endswith("shard folder") else ""
        found.append((f"{key}: {what} {Path(path).expanduser().absolute()} does not exist{hint}", path))
    for key in ("ckpt_path", "weights"):
        value = config.get(key)
        if isinstance(value, str) and value not in ("last", "best") and not Path(value).expanduser().exists():
            found.append((f"{key}: {Path(value).expanduser().absolute()} does not exist", value))
    return list(dict.fromkeys(found))


def problems(config: dict[str, Any]) -> list[str]:
    """One line per missing file or folder the config names."""
    return [line for line, _ in missing(config)]
