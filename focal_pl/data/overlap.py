"""Whether a test set shares images with the training or validation data, by path or by content.

Paper numbers are only worth something when no test image was trained or selected on. Paths are
compared first; then only files of a size some test file also has are hashed, so checking a
thousand test images against a large training folder reads little of it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from focal_pl.data.shards import sha256_file
from focal_pl.data.sources import FileSource, ForgerySource


def _files(source: ForgerySource) -> list[Path]:
    """The image files of a file-based source (others have no files to compare)."""
    inner = getattr(source, "source", source)  # a held-out view keeps its source's files
    if not isinstance(inner, FileSource):
        return []
    entries = inner.entries
    indices = getattr(source, "indices", range(len(entries)))
    return [entries[i % len(entries)].image for i in indices]


def find_overlaps(test: list[ForgerySource], others: dict[str, list[ForgerySource]]) -> list[tuple[str, str, str]]:
    """``(test file, other file, "same path" | "same content" + split)`` for every shared image."""
    test_files = {p.resolve() for s in test for p in _files(s)}
    if not test_files:
        return []
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in test_files:
        if path.is_file():
            by_size[path.stat().st_size].append(path)
    hashes: dict[str, list[Path]] | None = None
    found: list[tuple[str, str, str]] = []
    for split, sources in others.items():
        for path in {p.resolve() for s in sources for p in _files(s)}:
            if path in test_files:
                found.append((str(path), str(path), f"same path ({split})"))
            if not path.is_file() or path.stat().st_size not in by_size:
                continue
            if hashes is None:  # hash the test files once, and only when a size matches
                hashes = defaultdict(list)
                for group in by_size.values():
                    for test_path in group:
                        hashes[sha256_file(test_path)].append(test_path)
            for twin in hashes.get(sha256_file(path), []):
                if twin != path:
                    found.append((str(twin), str(path), f"same content ({split})"))
    return sorted(set(found))
