"""Reading shard folders: a folder's chunk list (from its index, manifest or journal), each chunk verified
once per process, its items read, decoded, and served as an ordinary source; a report of all damage."""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focal_pl.data.decode import read_image, read_mask
from focal_pl.data.shards.format import (
    INDEX,
    ITEMS,
    JOURNAL,
    MANIFEST,
    PLAN,
    chunk_structure,
    load_json,
    read_item_list,
    sha256_file,
    unpack_item,
)
from focal_pl.data.shards.journal import Journal, journal_total
from focal_pl.data.sources import ForgerySource


@dataclass(frozen=True)
class Chunk:
    """A chunk as listed: its file name, item count, size in bytes and sha256 (None: unknown)."""

    name: str
    items: int
    bytes: int | None
    sha256: str | None


class ChunkProblem(Exception):
    """An item that cannot be read because of its chunk: ``where`` (the chunk file) and ``reason``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def _chunks_of_index(index: Any) -> list[Chunk]:
    return [Chunk(str(c["filename"]), int(c["chunk_size"]), int(c["chunk_bytes"]), None) for c in index["chunks"]]


def _chunks_of_manifest(manifest: Any) -> list[Chunk]:
    return [Chunk(str(name), int(c["items"]), int(c["bytes"]), str(c["sha256"]))
            for name, c in manifest["chunks"].items()]


class ShardFolder:
    """A shard folder's chunks (names, item counts, sizes, sha256 sums) and reads of its items.

    The chunk list comes from ``index.json``, else from ``manifest.json``, else from the chunk files'
    own headers; ``notes`` says which, and which file was unreadable. Reading an item verifies its
    chunk the first time this process opens it (``verify``: against the manifest's sha256, always
    its size and header); a bad chunk raises ``ChunkProblem`` for each of its items.
    """

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.verify = verify
        self.notes: list[tuple[str, str]] = []
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such shard folder")
        self.chunks = self._chunk_list()
        if not self.chunks:
            raise ValueError(f"{self.path}: no chunk to read: not a shard folder, or an unfinished conversion "
                             f"(rerun `focal-pl data shard ... --out {self.path}` to finish it)")
        self.starts = np.concatenate([[0], np.cumsum([c.items for c in self.chunks])]).astype(np.int64)
        self._reset()

    def _chunk_list(self) -> list[Chunk]:
        index, index_error = load_json(self.path / INDEX)
        manifest, manifest_error = load_json(self.path / MANIFEST)
        listed = summed = None
        try:
            listed = _chunks_of_index(index) if index is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            index_error = "not a litdata index (no chunk list)"
        try:
            summed = _chunks_of_manifest(manifest) if manifest is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            manifest_error = "not a shard manifest (no chunk checksums)"
        journal = Journal.load(self.path) if (self.path / JOURNAL).is_file() and (index_error or manifest_error) \
            else None
        total = journal_total(self.path)
        if journal is not None and journal.done < total and listed is None and summed is None:
            raise ValueError(f"unfinished conversion: {journal.done:,} of {total:,} items done; rerun "
                             f"`focal-pl data shard` with the same arguments and --out {self.path} to finish it")
        kept = None
        if summed is None and journal is not None and journal.done == total and journal.chunks:
            kept = [Chunk(e["chunk"], e["items"], e["bytes"], e["sha256"]) for e in journal.chunks]
        if index_error:
            self.notes.append((str(self.path / INDEX), index_error + (
                "; the chunk list is taken from " + (MANIFEST if summed else JOURNAL) if summed or kept else "")))
        if manifest_error:
            self.notes.append((str(self.path / MANIFEST), manifest_error + (
                f"; checksums are taken from {JOURNAL}" if kept else "; chunks are read without checksums")))
        summed = summed if summed is not None else kept
        if listed is None:
            listed = summed
        if listed is not None:
            sums = {c.name: c for c in summed or []}
            chunks = []
            for chunk in listed:
                known = sums.get(chunk.name)
                if summed is not None and (known is None or (known.items, known.bytes) != (chunk.items, chunk.bytes)):
                    self.notes.append((str(self.path / chunk.name), f"listed otherwise in {INDEX} than in {MANIFEST}; "
                                                                    "read without a checksum"))
                    known = None
                chunks.append(Chunk(chunk.name, chunk.items, chunk.bytes, known.sha256 if known else None))
            return chunks
        chunks = []
        for path in sorted(self.path.glob("chunk-*.bin")):
            if chunk_structure(path, None, None) is None:
                with path.open("rb") as handle:
                    chunks.append(Chunk(path.name, struct.unpack("<I", handle.read(4))[0], path.stat().st_size, None))
            else:
                self.notes.append((str(path), "unreadable and not indexed; left out"))
        if chunks:
            self.notes.append((str(self.path), f"chunk list rebuilt from {len(chunks)} chunk file(s)' own headers, "
                                               "without checksums"))
        return chunks

    def _reset(self) -> None:
        self._status: dict[int, str | None] = {}  # chunk -> None (good) or why it is bad, per process
        self._handles: OrderedDict[int, int] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_status")
        state.pop("_handles")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def chunk_items(self) -> list[int]:
        return [c.items for c in self.chunks]

    def locate(self, item: int) -> tuple[int, int]:
        chunk = int(np.searchsorted(self.starts, item, side="right")) - 1
        return chunk, item - int(self.starts[chunk])

    def chunk_path(self, chunk: int) -> Path:
        return self.path / self.chunks[chunk].name

    def item_list(self) -> list[tuple[str, str]] | None:
        """``(sha256 of the image bytes, original name)`` of every item, from the lists written beside
        the chunks (no chunk is read); None for shards written before those lists existed."""
        listed: list[tuple[str, str]] = []
        for chunk in self.chunks:
            rows = read_item_list(self.path / f"{chunk.name}{ITEMS}", chunk.items)
            if rows is None:
                return None
            listed += rows
        return listed

    def check_chunk(self, chunk: int, verify: bool | None = None) -> str | None:
        """Why chunk ``chunk`` is unusable, or None; verified once per process."""
        if chunk in self._status:
            return self._status[chunk]
        info = self.chunks[chunk]
        reason = chunk_structure(self.chunk_path(chunk), info.items, info.bytes)
        if reason is None and info.sha256 and (self.verify if verify is None else verify):
            if sha256_file(self.chunk_path(chunk)) != info.sha256:
                reason = "its sha256 differs from manifest.json: the chunk was damaged after it was written"
        if reason is not None:
            reason = f"{reason}; its {info.items} item(s) cannot be read"
        self._status[chunk] = reason
        return reason

    def _handle(self, chunk: int) -> int:
        if chunk in self._handles:
            self._handles.move_to_end(chunk)
            return self._handles[chunk]
        handle = os.open(self.chunk_path(chunk), os.O_RDONLY)
        self._handles[chunk] = handle
        while len(self._handles) > 16:
            os.close(self._handles.popitem(last=False)[1])
        return handle

    def read(self, item: int) -> dict[str, bytes]:
        """The stored sample ``item`` (bytes of image, mask, meta); ``ChunkProblem`` if unreadable."""
        chunk, offset = self.locate(item)
        where = str(self.chunk_path(chunk))
        reason = self.check_chunk(chunk)
        if reason is not None:
            raise ChunkProblem(where, f"{reason} and are skipped (`focal-pl data check {self.path}` lists all damage)")
        try:
            handle = self._handle(chunk)
            begin, end = struct.unpack("<2I", os.pread(handle, 8, 4 + 4 * offset))
            data = os.pread(handle, end - begin, begin)
            if len(data) != end - begin:
                raise ValueError(f"item {offset} is cut off ({len(data)} of {end - begin} bytes)")
            return unpack_item(data)
        except (OSError, ValueError, struct.error) as error:
            self._status[chunk] = f"unreadable ({error}); its {self.chunks[chunk].items} item(s) cannot be read"
            stale = self._handles.pop(chunk, None)
            if stale is not None:
                os.close(stale)
            raise ChunkProblem(where, f"{self._status[chunk]} and are skipped") from error


def inspect_shards(path: str | Path, verify: bool = True, progress: bool = False) -> dict[str, Any]:
    """Everything wrong with a shard folder: unreadable index or manifest, an unfinished job, chunks
    missing, truncated, or (``verify``) whose sha256 differs from the manifest.

    Returns ``{"folder", "chunks", "items", "bad_chunks": [names], "problems": [(where, reason)]}``.
    """
    folder_path = Path(path).expanduser()
    problems: list[tuple[str, str]] = []
    try:
        folder = ShardFolder(folder_path, verify=verify)
    except (OSError, ValueError) as error:
        problems.append((str(folder_path), str(error).removeprefix(f"{folder_path}: ")))
        return {"folder": str(folder_path), "chunks": 0, "items": 0, "bad_chunks": [], "problems": problems}
    problems += folder.notes
    bad = []
    from focal_pl.data.progress import tracked

    numbers = range(len(folder.chunks))
    for number in tracked(numbers, len(numbers), "verifying chunks", "chunk") if progress else numbers:
        reason = folder.check_chunk(number)
        if reason is not None:
            bad.append(folder.chunks[number].name)
            problems.append((str(folder.chunk_path(number)), reason))
    listed = {c.name for c in folder.chunks}
    for stray in sorted(folder_path.glob("chunk-*.bin")):
        if stray.name not in listed:
            problems.append((str(stray), "a chunk file that the index does not list (left out of training)"))
    return {"folder": str(folder_path), "chunks": len(folder.chunks), "items": len(folder), "bad_chunks": bad,
            "problems": problems}


def verify_shards(path: str | Path) -> list[str]:
    """Names of the chunks that are missing, truncated, or whose sha256 differs from the manifest."""
    return inspect_shards(path)["bad_chunks"]


def is_shard_folder(path: str | Path) -> bool:
    folder = Path(path)
    return folder.is_dir() and any((folder / name).exists() for name in (INDEX, MANIFEST, PLAN))


# ---------------------------------------------------------------- decoding


def sample_meta(sample: dict[str, Any]) -> dict[str, Any]:
    """The name / source / upright record of a stored sample."""
    return json.loads(bytes(sample["meta"]).decode())


def decode_sample(sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A stored sample -> (image uint8 H x W x 3, mask uint8 H x W, meta)."""
    try:
        meta = sample_meta(sample)
        name = str(meta["name"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unreadable meta record ({type(error).__name__}: {error})") from error
    image = read_image(bytes(sample["image"]), name=name, upright=bool(meta.get("upright")))
    mask = read_mask(bytes(sample["mask"]), name=f"{name} (mask)")
    return image, mask, {"name": name, "source": str(meta.get("source", ""))}


def sample_name(sample: dict[str, Any]) -> str:
    """The stored name of a sample, or a placeholder when even its meta is unreadable."""
    try:
        return str(sample_meta(sample)["name"])
    except Exception:  # noqa: BLE001
        return "a shard sample with unreadable meta"


class ShardSource(ForgerySource):
    """Random access to a shard folder as an ordinary source (evaluation, checks, small runs).

    Items of a chunk that fails its check raise ``ChunkProblem`` (reported and skipped like any bad
    item); ``without(chunks)`` leaves given chunks out altogether.
    """

    def __init__(self, path: str, verify: bool = True) -> None:
        self.folder = ShardFolder(path, verify=verify)
        self.path = str(self.folder.path)
        self.name = f"shards:{self.folder.path.name}"
        self.items = np.arange(len(self.folder), dtype=np.int64)

    def where(self) -> str:
        return self.path

    def without(self, chunks: Sequence[str]) -> ShardSource:
        """A copy that leaves out the items of the named chunks."""
        bad = {n for n, c in enumerate(self.folder.chunks) if c.name in set(chunks)}
        copy = object.__new__(ShardSource)
        copy.__dict__.update(self.__dict__)
        keep = [np.arange(self.folder.starts[n], self.folder.starts[n + 1]) for n in range(len(self.folder.chunks))
                if n not in bad]
        copy.items = np.concatenate(keep).astype(np.int64) if keep else np.zeros(0, np.int64)
        return copy

    def subset(self, items: Sequence[int]) -> ShardSource:
        """A copy that serves only the given item numbers of the folder."""
        copy = object.__new__(ShardSource)
        copy.__dict__.update(self.__dict__)
        copy.items = np.asarray(items, dtype=np.int64)
        return copy

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, index: int) -> str:
        chunk, offset = self.folder.locate(int(self.items[index]))
        return f"{self.folder.chunk_path(chunk)} item {offset}"

    def load(self, index: int):
        return decode_sample(self.folder.read(int(self.items[index])))
