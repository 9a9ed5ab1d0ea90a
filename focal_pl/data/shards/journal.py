"""The journal of a shard job (``progress.jsonl``, one line per finished chunk) and its plan's item
count: the writer resumes from them, and the reader rebuilds a chunk list from them when the index is lost."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focal_pl.files.atomic import write_atomic
from focal_pl.data.shards.format import JOURNAL, PLAN


@dataclass
class Journal:
    """The finished chunks of a job (``progress.jsonl``), checked against the chunk files."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.entries[-1]["end"] if self.entries else 0

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["chunk"]]

    @classmethod
    def load(cls, output: Path, repair: bool = False) -> Journal:
        """Entries up to the first one that is cut off or unreadable (an interrupted write); the rest
        is redone. The last entry's chunk must be there at its size (it is renamed into place before
        its entry is written, so only later damage can remove it: ``damaged`` lists such chunks).
        ``repair`` rewrites the file without the entries that were dropped (the writer's view)."""
        journal = cls()
        path = output / JOURNAL
        lines = path.read_text().splitlines() if path.is_file() else []
        for line in lines:
            try:
                entry = json.loads(line)
                ok = entry["first"] == journal.done and entry["end"] >= entry["first"]
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                break
            journal.entries.append(entry)
        while journal.entries and journal.entries[-1]["chunk"] and not _same_size(output, journal.entries[-1]):
            journal.entries.pop()
        if repair and len(journal.entries) != len(lines):  # drop what follows the last good entry
            write_atomic(path, "".join(json.dumps(e) + "\n" for e in journal.entries))
        return journal

    def append(self, output: Path, entry: dict[str, Any]) -> None:
        """Journal a finished chunk (written and synced before the call returns)."""
        with open(output / JOURNAL, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.entries.append(entry)

    def damaged(self, output: Path) -> list[str]:
        """Journaled chunks that are now missing or of another size."""
        return [e["chunk"] for e in self.chunks if not _same_size(output, e)]


def _same_size(output: Path, entry: dict[str, Any]) -> bool:
    chunk = output / entry["chunk"]
    return chunk.is_file() and chunk.stat().st_size == entry["bytes"]


def journal_total(output: Path) -> int:
    """The number of items the folder's job converts (from plan.json; 0 when unknown)."""
    try:
        return int(json.loads((output / PLAN).read_text())["items"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0

