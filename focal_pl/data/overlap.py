"""Whether a test set shares images with the data a model was trained or validated on, by path or by
content, through folders and shards alike.

Paper numbers are only worth something when no test image was trained or selected on. Test files
are compared with each training source: a file source by path, then by sha256 for files of a size
some test file has (a large training folder is barely read); a shard folder by the list of
``(sha256, original name)`` written beside its chunks (no chunk is read).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from focal_pl.data.shards import ShardFolder, ShardSource, StreamingShards, sha256_file
from focal_pl.data.sources import FileSource, ForgerySource

log = logging.getLogger(__name__)


def _files(source: Any) -> list[Path]:
    """The image files of a file-based source (held-out views keep their source's files)."""
    inner = getattr(source, "source", source)
    if not isinstance(inner, FileSource):
        return []
    entries = inner.entries
    indices = getattr(source, "indices", range(len(entries)))
    return [entries[i % len(entries)].image for i in indices]


def _shard_items(source: Any) -> tuple[str, list[tuple[str, str]] | None]:
    """``(folder, [(sha256, name)])`` of the items a shard source serves; the list is None for
    shards written without item lists."""
    if isinstance(source, ShardSource):
        listed = source.folder.item_list()
        return source.path, None if listed is None else [listed[i] for i in source.items.tolist()]
    folder = ShardFolder(source, verify=False)
    return str(folder.path), folder.item_list()


def _shard_sources(source: Any) -> list[Any]:
    if isinstance(source, StreamingShards):
        return list(source.paths)
    return [source] if isinstance(source, ShardSource) else []


def find_overlaps(test: list[ForgerySource], others: dict[str, list[Any]]) -> list[tuple[str, str, str]]:
    """``(test file, other file, "same path" | "same content" + split)`` for every shared image.
    ``others``: split name -> sources (file sources, held-out views, shard sources, ``StreamingShards``)."""
    test_files = {p.resolve() for s in test for p in _files(s)}
    if not test_files:
        return []
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in test_files:
        if path.is_file():
            by_size[path.stat().st_size].append(path)
    hashes: dict[str, list[Path]] = {}

    def test_hashes() -> dict[str, list[Path]]:  # hashed once, when something needs them
        if not hashes:
            for group in by_size.values():
                for test_path in group:
                    hashes.setdefault(sha256_file(test_path), []).append(test_path)
        return hashes

    found: set[tuple[str, str, str]] = set()
    for split, sources in others.items():
        for path in {p.resolve() for s in sources for p in _files(s)}:
            if path in test_files:
                found.add((str(path), str(path), f"same path ({split})"))
            if not path.is_file() or path.stat().st_size not in by_size:
                continue
            for twin in test_hashes().get(sha256_file(path), []):
                if twin != path:
                    found.add((str(twin), str(path), f"same content ({split})"))
        for shards in (s for source in sources for s in _shard_sources(source)):
            folder, items = _shard_items(shards)
            if items is None:
                log.warning("%s: shards written without item lists cannot be compared with the test sets; "
                            "write them again with `focal-pl data shard` to check", folder)
                continue
            for digest, name in items:
                where = f"{name} (in shards {folder})"
                named = Path(name).resolve() if name else None
                if named in test_files:
                    found.add((str(named), where, f"same path ({split})"))
                for twin in test_hashes().get(digest, []):
                    found.add((str(twin), where, f"same content ({split})"))
    return sorted(found)
