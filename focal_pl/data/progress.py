"""Progress as people expect it: a bar with an ETA on a terminal (tqdm), a line every so often in
a log file (the same counts, the rate and the ETA), so a long job never sits silent."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

LINE_SECONDS = 30.0  # a log file gets a line at most this often


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.2 h``: how long, readable at a glance."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def eta(done: int, total: int | None, seconds: float) -> str:
    """``ETA 4 min`` for ``done`` of ``total`` units after ``seconds``; empty when it cannot be told."""
    if not total or done <= 0 or seconds <= 0 or done >= total:
        return ""
    return f"ETA {duration(seconds / done * (total - done))}"


class LineProgress:
    """tqdm's counting interface (``update``, ``close``, a context manager), writing a line at most
    every ``every`` seconds and one at the end: ``DESC: 1,200/20,001 img (45.2 img/s, ETA 7 min)``."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0, every: float = LINE_SECONDS,
                 file: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.n, self.every = total, desc, unit, initial, every
        self.file = file or sys.stderr
        self._start_n, self._start = initial, time.perf_counter()
        self._said = self._start

    def line(self) -> str:
        seconds = time.perf_counter() - self._start
        rate = (self.n - self._start_n) / seconds if seconds > 0 else 0.0
        counted = f"{self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"
        told = ", ".join(t for t in (f"{rate:.1f} {self.unit}/s", eta(self.n - self._start_n,
                                                                      (self.total or 0) - self._start_n, seconds)) if t)
        return f"{self.desc}: {counted} {self.unit} ({told})"

    def update(self, count: int = 1) -> None:
        self.n += count
        now = time.perf_counter()
        if now - self._said >= self.every:
            self._said = now
            print(self.line(), file=self.file, flush=True)

    def close(self) -> None:
        print(self.line(), file=self.file, flush=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True) -> Any:
    """A tqdm bar (with its ETA) on a terminal, ``LineProgress`` in a log file, nothing when disabled."""
    if not enabled:
        from tqdm import tqdm

        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, desc=desc)
    return LineProgress(total, desc, unit, initial)


def tracked(iterable: Any, total: int, desc: str, unit: str = "it") -> Any:
    """``iterable``, counted by ``progress``."""
    with progress(total, desc, unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)
