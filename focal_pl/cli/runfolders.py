"""Which run folder a command writes to, and which checkpoint ``--ckpt_path`` means.

One layout for every run, whatever started it (the CLI, a sweep, an ablation, W&B):
``<save_dir>/<name>/<version>/``. The name is the first config's stem (or ``--run.name``); the
version is ``version_N``, followed by what differs from that config (laid-over configs and command
line overrides, e.g. ``version_3_paper_mix_temperature=0.05``), or ``--run.version``. ``test``,
``validate`` and ``predict`` with a checkpoint of a run write beside it, in
``<run>/<command>_K/``. ``--ckpt_path`` takes a file, a run folder, or ``last`` / ``best`` of this
config's runs, and refuses when that is ambiguous or missing.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

# the keys a resumed run may change (its length, its checkpoint, where and how it is named)
RESUME_KEYS = ("ckpt_path", "config", "trainer.max_steps", "trainer.max_epochs", "budget.images",
               "run.", "trainer.logger", "evaluation.metrics_file", "trainer.enable_progress_bar",
               "trainer.num_sanity_val_steps", "trainer.callbacks")
# command line keys that never name a run
UNNAMED = ("--config", "-c", "--ckpt_path", "--run.", "--trainer.logger", "--print_config",
           "--evaluation.metrics_file", "--trainer.enable_progress_bar", "--trainer.callbacks",
           "--trainer.num_sanity_val_steps", "--trainer.log_every_n_steps", "--data.num_workers")


def _value(value: str) -> str:
    """A short form of an override's value: a class's name for a class spec, else the value."""
    text = value.strip()
    match = re.search(r"class_path['\"]?\s*:\s*['\"]?([\w.]+)", text)
    if match:
        return match.group(1).rsplit(".", 1)[-1]
    return text


def overrides(argv: list[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of every ``--key value`` / ``--key=value`` after the subcommand."""
    pairs, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            if "=" in arg:
                key, value = arg.split("=", 1)
                i += 1
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                key, value = arg, argv[i + 1]
                i += 2
            else:
                key, value = arg, "true"
                i += 1
            pairs.append((key, value))
        else:
            i += 1
    return pairs


def config_files(argv: list[str]) -> list[str]:
    """The ``--config`` files in order."""
    files, take = [], False
    for arg in argv:
        if take:
            files.append(arg)
            take = False
        elif arg in ("--config", "-c"):
            take = True
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def run_name(argv: list[str]) -> str:
    """The first config's stem (``vit``, ``demo``), or ``run`` without a config."""
    files = config_files(argv)
    return Path(files[0]).stem if files else "run"


def run_slug(argv: list[str], limit: int = 80) -> str:
    """What differs from the first config: laid-over configs and overrides, as a folder-safe text."""
    parts = [Path(f).stem for f in config_files(argv)[1:] if "logger" not in Path(f).parts]
    for key, value in overrides(argv):
        if key.startswith(UNNAMED):
            continue
        leaf = key.lstrip("-").replace(".init_args", "").split(".")[-1]
        parts.append(f"{leaf}={_value(value)}")
    slug = re.sub(r"[^\w.=+,-]+", "-", "_".join(parts)).strip("-_")
    if len(slug) > limit:
        slug = slug[: limit - 9] + "-" + hashlib.sha1(slug.encode()).hexdigest()[:8]
    return slug


def next_version(folder: Path, slug: str = "") -> str:
    """``version_N[_slug]`` with N one above every ``version_*`` already in ``folder``."""
    numbers = [int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else [])
               if (m := re.match(r"version_(\d+)", p.name))]
    version = f"version_{max(numbers, default=-1) + 1}"
    return f"{version}_{slug}" if slug else version


def next_evaluation(run: Path, command: str) -> str:
    """``<command>_K`` with K one above those already in the run folder."""
    numbers = [int(m.group(1)) for p in (run.iterdir() if run.is_dir() else [])
               if (m := re.fullmatch(rf"{command}_(\d+)", p.name))]
    return f"{command}_{max(numbers, default=-1) + 1}"


def checkpoint_step(path: Path) -> int:
    """The global step stored in a checkpoint (read lazily: the weights are not loaded)."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(checkpoint.get("global_step", 0))


def candidates(runs: Path, which: str) -> list[Path]:
    """``last.ckpt`` (or the best checkpoint) of every run folder under ``runs``."""
    if not runs.is_dir():
        return []
    found = []
    for run in sorted(p for p in runs.iterdir() if (p / "checkpoints").is_dir()):
        if which == "last" and (run / "checkpoints" / "last.ckpt").is_file():
            found.append(run / "checkpoints" / "last.ckpt")
        elif which == "best":
            best = sorted((run / "checkpoints").glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
            if best:
                found.append(best[-1])
    return found


def resolve_checkpoint(value: str, runs: Path, command: str) -> Path:
    """The checkpoint file ``--ckpt_path value`` means; raises ``ValueError`` saying why not."""
    if value in ("last", "best"):
        found = candidates(runs, value)
        if not found:
            raise ValueError(f"ckpt_path: no {value} checkpoint under {runs}/*/checkpoints; "
                             f"nothing to {'resume' if command == 'fit' else command}")
        if len(found) > 1:
            listed = ", ".join(f"{p.parent.parent.name} (step {checkpoint_step(p)})" for p in found)
            raise ValueError(f"ckpt_path {value}: several runs under {runs} have one: {listed}; "
                             f"name the run, e.g. --ckpt_path {found[-1].parent.parent}")
        return found[0]
    path = Path(value).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise ValueError(f"ckpt_path: {path} is a folder without checkpoints/last.ckpt")
    if not path.is_file():
        raise ValueError(f"ckpt_path: {path} does not exist")
    return path


def run_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if it is one of ours."""
    run = checkpoint.resolve().parent.parent
    return run if checkpoint.parent.name == "checkpoints" and (run / "config.yaml").is_file() else None


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    """Nested dicts / lists as ``{dotted.key: leaf}``."""
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, list) and tree and all(isinstance(v, dict) for v in tree):
        out = {}
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): tree}


def config_differences(saved: Path, current: dict) -> list[str]:
    """Keys (outside ``RESUME_KEYS``) whose value differs between a run's config.yaml and ``current``."""
    before = flatten(yaml.safe_load(saved.read_text()) or {})
    now = flatten(json.loads(json.dumps(current, default=str)))
    keys = sorted(set(before) | set(now))
    changed = []
    for key in keys:
        if any(key == k or key.startswith(k if k.endswith(".") else k + ".") for k in RESUME_KEYS):
            continue
        if before.get(key) != now.get(key):
            changed.append(f"{key}: {before.get(key)!r} -> {now.get(key)!r}")
    return changed
