"""Files and folders that must exist, checked in one place so that a command can say every missing
one at once: ``must_exist`` raises ``FileNotFoundError`` naming the path, or, while a command is
collecting (``collect_missing``), notes it and lets the object be built, to be refused with all
the others together before anything runs (``focal_pl.cli.preflight``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

_missing: list[str] | None = None


def must_exist(path: str | Path, what: str, message: str | None = None) -> Path:
    """``path`` as an absolute path when it exists; else ``FileNotFoundError`` saying
    ``message`` (default ``WHAT: PATH does not exist``), or, while collecting, that line noted."""
    found = Path(path).expanduser().absolute()
    if found.exists():
        return found
    line = message or f"{what}: {found} does not exist"
    if _missing is None:
        raise FileNotFoundError(line)
    note_missing(line, path)
    return found


def note_missing(line: str, path: str | Path | None = None) -> None:
    """Note a missing path said in a line of its own (``must_exist`` notes the usual ones); a
    path said once already (in another line) is not said again."""
    if _missing is None or line in _missing:
        return
    if path is not None and any(str(Path(path).expanduser().absolute()) in said or str(path) in said
                                for said in _missing):
        return
    _missing.append(line)


def missing_so_far() -> list[str]:
    """The lines noted since ``start_collecting`` (empty when not collecting)."""
    return list(_missing or [])


def collecting() -> bool:
    """Whether missing paths are being noted (not raised) now."""
    return _missing is not None


def start_collecting() -> None:
    """From now on ``must_exist`` notes missing paths instead of raising (until ``stop_collecting``)."""
    global _missing
    _missing = []


def stop_collecting() -> list[str]:
    """Stop noting; the lines noted since ``start_collecting`` (none when it was not started)."""
    global _missing
    noted, _missing = _missing or [], None
    return noted


@contextlib.contextmanager
def collect_missing() -> Iterator[list[str]]:
    """Within the block, ``must_exist`` notes missing paths in the list it yields instead of raising."""
    start_collecting()
    noted = _missing
    try:
        yield noted
    finally:
        stop_collecting()
