"""Which run folder a command writes to, and which checkpoint ``--ckpt_path`` means.

One layout for every run, whatever started it (the CLI, a sweep, an ablation, W&B):
``<save_dir>/<name>/<version>/``. The name is the first config's stem (or ``--run.name``); the
version is ``version_N``, followed by what differs from that config (laid-over configs and command
line overrides, e.g. ``version_3_paper_mix_temperature=0.05``), or ``--run.version``. ``test``,
``validate`` and ``predict`` with a checkpoint of a run write beside it, in
``<run>/<command>_K/``. ``--ckpt_path`` takes a file, a run folder, or ``last`` / ``best`` of this
config's runs, and refuses when that is ambiguous, missing or damaged.

Folders are made exclusively (two commands started together never share one) and a fit holds its
run folder's lock (``<run>/.lock``, released by the system when the process ends, even by SIGKILL)
for as long as it runs, so that a second fit of the same run is refused, naming the first.
Only the launching process (global rank 0) makes folders; the processes a DDP launcher starts take
its folder by broadcast when the run is set up (``focal_pl.training.runs.run_dir``). A command
refused before it runs leaves nothing on disk: the folders it made, parents included, are taken back.

A run folder given as ``--ckpt_path`` means one checkpoint, by one rule
(``focal_pl.training.checkpoints.run_checkpoint``): its ``last.ckpt`` to ``fit`` (a resume), its
best checkpoint (the model its validation selected; ``last.ckpt`` when it has none) to ``validate``,
``test``, ``predict`` and ``export``.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

from focal_pl.files import locks

LOCK_FILE = ".lock"
_held: list[int] = []  # descriptors of the locks this process holds (for its lifetime)
_made: list[Path] = []  # folders this process made and may take back if the command fails before running

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


def launch_rank() -> int:
    """This process's global rank as a launcher set it (torchrun, SLURM, Lightning's own launcher), 0
    for a process that was not launched as one of several."""
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)


def _make_folder(folder: Path) -> None:
    """Create ``folder`` (exclusively: ``FileExistsError`` when it exists) and the parents it lacks,
    each remembered so that a refused command takes them back; a failure said in one line."""
    missing = [p for p in reversed(folder.parents) if not p.exists()]
    try:
        for parent in missing:
            parent.mkdir(exist_ok=True)
            _made.append(parent)
        folder.mkdir()
    except FileExistsError:
        raise
    except OSError as error:
        raise ValueError(f"run folder: cannot create {folder}: {os.strerror(error.errno) if error.errno else error}") \
            from error
    _made.append(folder)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on the folder itself (no lock file: a refused command leaves nothing)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def reserve(folder: Path, numbered: str | None = None, exist_ok: bool = False) -> Path:
    """Make a new folder for a command: ``folder`` itself (``exist_ok``: or take it as it is), or
    (``numbered`` = a ``version_N`` / ``<command>_K`` pattern's kind) the next free number in
    ``folder``; a numbered folder is never one that exists."""
    if numbered is None:
        try:
            _make_folder(folder)
        except FileExistsError:
            if not exist_ok:
                raise ValueError(f"run.version: {folder} exists already; choose another version") from None
        return folder
    try:
        if not folder.is_dir():
            try:
                _make_folder(folder)
            except FileExistsError:
                pass  # made by a command started at the same time
        with _locked(folder):  # numbers are chosen one process at a time (two slugs share a number otherwise)
            while True:
                name = numbered_name(folder, numbered)
                try:
                    _make_folder(folder / name)
                    return folder / name
                except FileExistsError:
                    continue
    except OSError as error:
        raise ValueError(f"run folder: cannot create a folder in {folder}: "
                         f"{os.strerror(error.errno) if error.errno else error}") from error


def numbered_name(folder: Path, kind: str) -> str:
    """``version_N[_slug]`` (kind ``version:<slug>``) or ``<command>_K`` (kind = the command)."""
    if kind.startswith("version:"):
        return next_version(folder, kind.split(":", 1)[1])
    return next_evaluation(folder, kind)


def release_unused() -> None:
    """Take back the folders this process made when its command failed before running (only while
    they hold nothing but a lock file), newest first, so that made parents go too."""
    while _made:
        folder = _made.pop()
        with contextlib.suppress(OSError):
            if {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
                (folder / LOCK_FILE).unlink(missing_ok=True)
                folder.rmdir()


def release_locks() -> None:
    """Let go of the run locks this process holds (at the end of a command), and forget the folders
    it made."""
    while _held:
        with contextlib.suppress(OSError):
            os.close(_held.pop())
    _made.clear()


def lock_run(folder: Path) -> None:
    """Hold ``<folder>/.lock`` for the life of this process; ``ValueError`` naming the holder when
    another process holds it (a fit of the same run under way)."""
    path = folder / LOCK_FILE
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    command = " ".join(Path(sys.argv[0]).name.split()[:1] + sys.argv[1:3])
    try:
        descriptor = locks.hold(path, f"process {os.getpid()} on {socket.gethostname()} ({command}, since {started})")
    except locks.LockHeld as held:
        raise ValueError(f"ckpt_path: {folder} is in use by {held.holder}; wait for it to end or stop it "
                         "(two fits must not write one run)") from None
    except OSError as error:
        raise ValueError(f"run folder: cannot write {path}: {os.strerror(error.errno) if error.errno else error}") \
            from error
    _held.append(descriptor)


def lock_holder(folder: Path) -> str | None:
    """Who holds ``<folder>/.lock`` now (a fit under way), or None."""
    return locks.holder(folder / LOCK_FILE)


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
    """The global step stored in a checkpoint, after checking the file (memory-mapped: the weights
    are read once, for their sha256). ``ValueError`` names a file that cannot be used."""
    from focal_pl.files.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path, mmap=True)
    return int(checkpoint.get("global_step", 0))


def candidates(runs: Path, which: str) -> list[Path]:
    """``last.ckpt`` (or the best checkpoint) of every run folder under ``runs``."""
    from focal_pl.training.checkpoints import best_checkpoint

    if not runs.is_dir():
        return []
    found = []
    for run in sorted(p for p in runs.iterdir() if (p / "checkpoints").is_dir()):
        if which == "last" and (run / "checkpoints" / "last.ckpt").is_file():
            found.append(run / "checkpoints" / "last.ckpt")
        elif which == "best":
            best = best_checkpoint(run / "checkpoints")
            if best is not None:
                found.append(best)
    return found


def resolve_checkpoint(value: str, runs: Path, command: str) -> Path:
    """The checkpoint file ``--ckpt_path value`` means; raises ``ValueError`` saying why not."""
    from focal_pl.training.checkpoints import run_checkpoint

    if value in ("last", "best"):
        found = candidates(runs, value)
        if not found:
            raise ValueError(f"ckpt_path: no {value} checkpoint under {runs}/*/checkpoints; "
                             f"nothing to {'resume' if command == 'fit' else command}"
                             + (later_checkpoints_in(runs) if value == "last" else ""))
        if len(found) > 1:
            listed = ", ".join(f"{p.parent.parent.name} (step {checkpoint_step(p)})" for p in found)
            raise ValueError(f"ckpt_path {value}: several runs under {runs} have one: {listed}; "
                             f"name the run, e.g. --ckpt_path {found[-1].parent.parent}")
        return found[0]
    path = Path(value).expanduser()
    if path.is_dir():
        found = run_checkpoint(path, resume=command == "fit")
        if found is None:
            raise ValueError(f"ckpt_path: {path} is a folder without checkpoints/last.ckpt")
        return found
    if not path.is_file():
        raise ValueError(f"ckpt_path: {path} does not exist")
    return path


def later_checkpoints_in(runs: Path) -> str:
    """``; but RUN/checkpoints/best-step=N.ckpt is whole (step N): ...`` for the runs under ``runs``
    whose last.ckpt is missing but which hold another checkpoint (a full disk stopped its write)."""
    if not runs.is_dir():
        return ""
    from focal_pl.training.checkpoints import on_disk

    found = []
    for run in sorted(p for p in runs.iterdir() if (p / "checkpoints").is_dir()):
        files = [(name, step) for name, step in on_disk(run / "checkpoints") if step is not None]
        if files and not (run / "checkpoints" / "last.ckpt").is_file():
            name, step = files[0]
            found.append(f"{run / 'checkpoints' / name} (step {step})")
    return f"; but {', '.join(found)} is whole: resume from it with --ckpt_path FILE" if found else ""


def later_checkpoints(path: Path, step: int) -> str:
    """``; note: best-step=N.ckpt beside it holds a later step N`` when the checkpoints folder of
    ``path`` holds a whole checkpoint of a later step than ``step`` (a full disk stopped last.ckpt)."""
    from focal_pl.training.checkpoints import on_disk

    later = [(name, held) for name, held in on_disk(path.parent) if held is not None and held > step]
    if not later:
        return ""
    name, held = later[0]
    return f"; note: {name} beside it holds a later step ({held}): --ckpt_path {path.parent / name} resumes from there"


def check_fits(model: Any, path: Path) -> None:
    """Raise ``ValueError`` (``ckpt_path: ...``) when the checkpoint's weights do not fit ``model``:
    the first key missing, unexpected or of another shape, and the model config the checkpoint was
    trained with (and its run's config.yaml), so that a config that does not match is one line."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    saved = checkpoint.get("state_dict") or {}
    own = model.state_dict()
    problems = [f"{key} is not in the checkpoint" for key in own if key not in saved]
    problems += [f"{key} is {tuple(saved[key].shape)} in the checkpoint, {tuple(own[key].shape)} here"
                 for key in own if key in saved and tuple(saved[key].shape) != tuple(own[key].shape)]
    problems += [f"the checkpoint's {key} is not in this model" for key in saved if key not in own]
    if not problems:
        return
    hparams = checkpoint.get("hyper_parameters") or {}
    extractor = hparams.get("extractor") or {}
    trained = (f"{extractor.get('class_path', '?')} {json.dumps(extractor.get('init_args') or {})}"
               if isinstance(extractor, dict) else str(extractor))
    run = run_of(path)
    where = f" (its config: {run / 'config.yaml'})" if run is not None else ""
    raise ValueError(f"ckpt_path: {path} does not fit the configured model: {problems[0]}"
                     f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; it was trained with "
                     f"extractor {trained}{where}; give the config it was trained with")


def check_checkpoint(path: Path) -> int:
    """``checkpoint_step`` with the problem said as the ``ckpt_path`` option's."""
    try:
        return checkpoint_step(path)
    except ValueError as error:
        raise ValueError(f"ckpt_path: {error}") from error


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


def trained_data(config_file: Path) -> dict[str, list]:
    """The training and validation sources a run's saved ``config.yaml`` names, built (not read):
    ``{"train": [...], "val": [...]}`` for the test-overlap check."""
    from jsonargparse import ArgumentParser

    from focal_pl.data import ForgeryDataModule

    data = (yaml.safe_load(config_file.read_text()) or {}).get("data") or {}
    data = {k: v for k, v in data.items() if k in ("train", "val", "val_split", "image_size")}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(ForgeryDataModule, "data", fail_untyped=False)
    module = parser.instantiate_classes(parser.parse_object({"data": data})).data
    train = [module.stream] if module.stream is not None else module.sources["train"]
    return {k: v for k, v in (("train", train), ("val", module.sources["val"])) if v}
