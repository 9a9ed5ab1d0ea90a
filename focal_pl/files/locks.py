"""Lock files held for the life of a process (``flock``: the kernel lets go when the process ends,
even by SIGKILL), each holding a line that names its holder, so that a refused second process can
say who has the folder. Run folders and prediction folders use them."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is the line it wrote (or "another process")."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def hold(path: str | Path, holder: str) -> int:
    """Take ``path`` (created if absent) exclusively, without waiting, and write ``holder`` into it;
    the open descriptor (close it to let go). ``LockHeld`` when another process has it; ``OSError``
    when the file cannot be opened."""
    path = Path(path)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held = holder_of(descriptor)
        os.close(descriptor)
        raise LockHeld(path, held) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, holder.encode(), 0)
    return descriptor


def holder_of(descriptor: int) -> str:
    """The line a lock file's holder wrote in it."""
    return os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"


def holder(path: str | Path) -> str | None:
    """Who holds the lock at ``path`` now, or None (free, absent or unreadable)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return holder_of(descriptor)
    finally:
        os.close(descriptor)
