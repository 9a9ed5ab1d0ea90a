"""Checkpoint files that are always whole and checked: atomic writes on any filesystem, a sha256 of
the weights and optimizer state inside each file, and one-line errors for files that cannot be used.

A write goes to a file nobody sees (``focal_pl.files.atomic.staged``), is flushed to disk and
renamed over the target (a rename within one folder is atomic), so a kill or a full disk mid-save
leaves the previous file whole and no half-written file behind. Lightning's own writer stages the
file in ``$TMPDIR`` and falls back to a copy when that is another filesystem, which is not atomic.
Reading checks the weights and optimizer state against the digest the writer stored, so bytes
damaged on disk are named instead of scored or resumed from.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from focal_pl.files.atomic import staged

METADATA_KEY = "focal_pl"  # where focal-pl keeps its own data inside a Lightning checkpoint


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names the file, the reason and the free space."""


DIGESTED = ("state_dict", "optimizer_states")  # what the stored sha256 covers: weights and optimizer state


def _tensors(tree: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts / lists, with its path."""
    if isinstance(tree, torch.Tensor):
        return [(prefix, tree)]
    if isinstance(tree, Mapping):
        items = sorted(tree.items(), key=lambda kv: str(kv[0]))
    elif isinstance(tree, (list, tuple)):
        items = list(enumerate(tree))
    else:
        return []
    return [found for key, value in items for found in _tensors(value, f"{prefix}/{key}")]


def weights_digest(checkpoint: Mapping[str, Any]) -> str:
    """sha256 over the name, dtype, shape and bytes of every tensor of the checkpoint's weights and
    optimizer state (``state_dict``, ``optimizer_states``), in a fixed order."""
    digest = hashlib.sha256()
    for key in DIGESTED:
        for path, value in _tensors(checkpoint.get(key), key):
            tensor = value.detach().to("cpu").contiguous()
            digest.update(f"{path}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            if tensor.numel():
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def free_space(path: Path) -> str:
    """Free space of the filesystem holding ``path`` (or its nearest existing parent), readable."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return "unknown free space"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f"{free:.0f} {unit} free" if unit == "B" else f"{free:.1f} {unit} free"
        free /= 1024
    return ""


class _RecordingFile:
    """A file whose write errors are kept: torch's zip writer turns the OSError of a failed write
    (a full disk) into a RuntimeError without its errno, which this gives back."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def _open_for_write(handle: Any, target: Path) -> Any:
    """The file object ``target``'s bytes are written to (a seam for the tests' write-error injection)."""
    return handle


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a file nobody sees until it is whole, flushed and renamed over ``path``
    (``focal_pl.files.atomic.staged``). On any failure ``path`` is left as it was, nothing is left
    behind, and ``CheckpointWriteError`` says which file, why, and how much space is left."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged(target) as opened:
            handle = _RecordingFile(_open_for_write(opened, target))
            try:
                torch.save(obj, handle)
            except RuntimeError as error:
                if handle.error is None:
                    raise
                raise handle.error from error
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        kept = " (the previous file is kept)" if target.is_file() else ""
        raise CheckpointWriteError(error.errno or errno.EIO,
                                   f"could not write {target}: {reason}; {free_space(target.parent)} "
                                   f"on {target.parent}{kept}", str(target)) from error


def stamp(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Store the digest of the checkpoint's weights and optimizer state in it (``checkpoint['focal_pl']``)."""
    if isinstance(checkpoint.get("state_dict"), Mapping):
        meta = dict(checkpoint.get(METADATA_KEY) or {})
        meta["weights_sha256"] = weights_digest(checkpoint)
        checkpoint[METADATA_KEY] = meta
    return checkpoint


def verify(checkpoint: Mapping[str, Any], path: str | Path) -> None:
    """Raise ``CheckpointError`` when the tensors differ from the digest stored at writing (files
    written before digests existed, or by other tools, have none and pass)."""
    expected = (checkpoint.get(METADATA_KEY) or {}).get("weights_sha256")
    if expected is None or not isinstance(checkpoint.get("state_dict"), Mapping):
        return
    if weights_digest(checkpoint) != expected:
        raise CheckpointError(f"{path}: its weights or optimizer state do not match the sha256 stored when it was "
                              "written (the file is damaged); use another checkpoint, e.g. best-*.ckpt of the run")


def read_checkpoint(path: str | Path, map_location: Any = "cpu", check: bool = True,
                    mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint, loaded with ``weights_only=True`` and verified; ``CheckpointError``
    names the file and what is wrong (missing, empty, truncated, not a checkpoint, damaged).
    A file replaced while it was read (a fit under way renames a new ``last.ckpt`` over it; a
    memory-mapped load opens the name twice) is read again, up to three times."""
    file = Path(path).expanduser()
    for attempt in range(3):
        before = _identity(file)
        try:
            return _read_checkpoint(file, map_location, check, mmap)
        except CheckpointError:
            if attempt == 2 or before is None or _identity(file) == before:
                raise
    raise AssertionError("unreachable")


def _identity(file: Path) -> tuple[int, int, int] | None:
    """(device, inode, mtime) of ``file``: another value after a rename over it; None if absent."""
    try:
        status = file.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_mtime_ns


def _read_checkpoint(file: Path, map_location: Any, check: bool, mmap: bool) -> dict[str, Any]:
    """``read_checkpoint`` once."""
    if not file.exists():
        raise CheckpointError(f"{file} does not exist")
    if file.is_dir():
        raise CheckpointError(f"{file} is a folder, not a checkpoint file")
    size = file.stat().st_size
    if size == 0:
        raise CheckpointError(f"{file} is empty (0 bytes): a save that never finished?")
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if not zipfile.is_zipfile(file):  # torch files are zip archives, whose directory is at the end
            what = f"truncated or not a torch file ({size} bytes)"
        elif isinstance(error, pickle.UnpicklingError) and "weights_only" in str(error):
            what = "holds Python objects, not plain checkpoint data (not a focal-pl checkpoint)"
        else:
            what = f"cannot be read as a checkpoint ({first[:160]})"
        raise CheckpointError(f"{file}: {what}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        keys = ", ".join(list(checkpoint)[:4]) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{file}: not a Lightning checkpoint (no state_dict; holds {keys}): a weights "
                              "file belongs in the extractor's `weights` option")
    if check:
        verify(checkpoint, file)
    return checkpoint


def read_submodule(path: str | Path, name: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """One submodule of a LightningModule checkpoint: its saved config (``hyper_parameters[name]``,
    None if absent) and its weights (the ``state_dict`` entries under ``name.``, prefix removed).
    The one place that reads a checkpoint's layout for a part of the model (fusion reads the
    ``extractor`` of trained runs through it)."""
    checkpoint = read_checkpoint(path)
    prefix = f"{name}."
    state = {k[len(prefix):]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith(prefix)}
    return (checkpoint.get("hyper_parameters") or {}).get(name), state
