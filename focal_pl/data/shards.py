"""Streaming shards: write any mix of sources once, keeping every image's original encoded bytes
(re-encoding a JPEG destroys the traces forensics relies on); verify them; stream them back with an
exact weighted schedule, equal batch counts on every DDP rank, and mid-epoch resumption.

Layout of a shard folder (chunks in litdata's format, so ``litdata.StreamingDataset`` reads it too)::

    plan.json           what is being converted (sources, item count, chunk size): a rerun with
                        other arguments is refused instead of mixing two jobs in one folder
    progress.jsonl      one line per finished chunk (its items, skipped items, sha256): a rerun
                        resumes after the last finished chunk
    chunk-NNNNNN.bin    the chunks, numbered in writing order
    index.json          litdata's index over every chunk (written when all chunks are done)
    manifest.json       sources, counts, skipped items with reasons, chunk sizes and sha256 sums

A sample holds ``image`` (the file's bytes, or a lossless PNG for generated images), ``mask``
(PNG of the final {0,1} mask at the image's size) and ``meta`` (JSON: name, source, and
``upright`` when the EXIF orientation must be applied), all three stored as plain bytes.

A chunk is verified (its size, header and sha256 against the manifest) the first time a process
opens it: a damaged, truncated or missing chunk is reported by its file and its items are skipped
through the batch's ``problems``, never silently, and never stopping a run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DistributedSampler

from focal_pl import __version__
from focal_pl.atomic import write_atomic
from focal_pl.data.decode import encode_png, read_image, read_mask
from focal_pl.data.items import prepare_item, problem, skipped_item
from focal_pl.data.sources import FileSource, ForgerySource, distinct_items, load_pair
from focal_pl.data.splits import draw_held_out
from focal_pl.data.transforms import Augmentations

log = logging.getLogger(__name__)

FORMAT = 2  # of plan.json / progress.jsonl / manifest.json (1: parts of --part-size items)
FIELDS = ("image", "mask", "meta")
ITEMS = ".items.tsv"  # beside each chunk: "sha256 of the image bytes <TAB> original name" per item
_ITEM_HEADER = struct.Struct("<3I")  # byte sizes of image, mask, meta
_MAX_CHUNK_BYTES = 2**31  # offsets are uint32
PLAN, JOURNAL, INDEX, MANIFEST = "plan.json", "progress.jsonl", "index.json", "manifest.json"

# litdata's index config for samples {"image": bytes, "mask": bytes, "meta": bytes}, uncompressed
_DATA_SPEC = json.dumps([1, {"type": "builtins.dict", "context": json.dumps(list(FIELDS)),
                             "children_spec": [{"type": None, "context": None, "children_spec": []}] * 3}])


def _litdata_config(chunk_bytes: int) -> dict[str, Any]:
    return {"chunk_bytes": chunk_bytes, "chunk_size": None, "compression": None, "compression_level": None,
            "compression_batch_size": None, "ipc_compression": None, "data_format": ["bytes"] * 3,
            "data_spec": _DATA_SPEC, "encryption": None, "item_loader": "PyTreeLoader",
            "types": dict.fromkeys(FIELDS, "bytes")}


class ShardJobError(ValueError):
    """A shard job that cannot go on as asked (other arguments than the folder's job, a foreign
    folder); the message is one line saying what differs and what to do."""


class ShardingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``write_shards``; the message says where it stopped and how to resume."""


# ---------------------------------------------------------------- chunk format


def _pack_item(sample: dict[str, bytes]) -> bytes:
    parts = [bytes(sample[name]) for name in FIELDS]
    return _ITEM_HEADER.pack(*map(len, parts)) + b"".join(parts)


def _pack_chunk(items: list[bytes]) -> bytes:
    """litdata's chunk layout: uint32 item count, uint32 offsets[count + 1], the items."""
    start = 4 + 4 * (len(items) + 1)
    offsets = np.cumsum([start, *map(len, items)], dtype=np.int64)
    if offsets[-1] >= _MAX_CHUNK_BYTES:
        raise ValueError(f"a chunk of {offsets[-1]:,} bytes is over the 2 GiB limit of the format")
    return struct.pack("<I", len(items)) + offsets.astype("<u4").tobytes() + b"".join(items)


def _unpack_item(data: bytes) -> dict[str, bytes]:
    sizes = _ITEM_HEADER.unpack_from(data, 0)
    if _ITEM_HEADER.size + sum(sizes) != len(data):
        raise ValueError(f"item of {len(data)} bytes does not hold its fields' {sum(sizes)} bytes")
    out, at = {}, _ITEM_HEADER.size
    for name, size in zip(FIELDS, sizes):
        out[name] = data[at : at + size]
        at += size
    return out


def _chunk_structure(path: Path, items: int | None, size: int | None) -> str | None:
    """Why a chunk file cannot be read (missing, truncated, a header that does not add up), or None."""
    if not path.is_file():
        return "missing"
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"{actual:,} bytes where the index says {size:,} (truncated or overwritten)"
    with path.open("rb") as handle:
        head = handle.read(4)
        if len(head) < 4:
            return f"{actual} bytes: too short to be a chunk"
        count = struct.unpack("<I", head)[0]
        if items is not None and count != items:
            return f"its header counts {count} items where the index says {items}"
        if 4 + 4 * (count + 1) > actual:
            return f"its header ({count} items) does not fit in its {actual:,} bytes"
        offsets = np.frombuffer(handle.read(4 * (count + 1)), "<u4")
    if offsets[0] != 4 + 4 * (count + 1) or offsets[-1] != actual or np.any(np.diff(offsets.astype(np.int64)) < 0):
        return "its item offsets do not add up to the file (damaged header)"
    return None


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- writing


def _sample(image: bytes, mask: np.ndarray, name: str, source: str, upright: bool) -> dict[str, bytes]:
    meta = {"name": name, "source": source, "upright": upright}
    return {"image": image, "mask": encode_png(mask), "meta": json.dumps(meta).encode()}


def _raw_sample(source: ForgerySource, index: int) -> dict[str, bytes]:
    """One sample as stored: original bytes for file sources, PNG for generated ones."""
    if isinstance(source, FileSource):
        entry = source.entry(index)
        _, mask, notes = load_pair(entry, source.name)  # validates: raises on bad input
        upright = any("upright" in note for note in notes)
        return _sample(entry.image.read_bytes(), mask, str(entry.image), source.name, upright)
    image, mask, meta = source.load(index)
    name = str(meta.get("name", source.describe(index)))
    return _sample(encode_png(image), mask, name, source.name, False)


def _describe_source(source: ForgerySource) -> dict[str, Any]:
    count = distinct_items(source)
    digest = hashlib.sha256("\n".join(source.describe(i) for i in range(count)).encode()).hexdigest()
    return {"class": f"{type(source).__module__}.{type(source).__name__}", "name": source.name,
            "where": source.where() if isinstance(source, FileSource) else source.describe(0),
            "items": count, "list_sha256": digest[:16]}


class _Tasks:
    """Task number -> (source, index) over the sources' distinct items, in order."""

    def __init__(self, sources: Sequence[ForgerySource]) -> None:
        self.sources = list(sources)
        self.ends = np.cumsum([distinct_items(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def locate(self, task: int) -> tuple[int, int]:
        which = int(np.searchsorted(self.ends, task, side="right"))
        return which, task - (int(self.ends[which - 1]) if which else 0)

    def __call__(self, task: int) -> tuple[int, bytes | None, str, str]:
        """(task, packed item or None, where, reason of a skip)."""
        which, index = self.locate(task)
        source = self.sources[which]
        try:
            return task, _pack_item(_raw_sample(source, index)), "", ""
        except Exception as error:  # noqa: BLE001 - report, never stop the conversion
            where = source.describe(index)
            return task, None, where, problem(where, error)[1]


_WORKER_TASKS: _Tasks | None = None


def _worker_init(tasks: _Tasks) -> None:
    global _WORKER_TASKS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C: no child tracebacks
    _WORKER_TASKS = tasks


def _worker_run(task: int) -> tuple[int, bytes | None, str, str]:
    assert _WORKER_TASKS is not None
    return _WORKER_TASKS(task)


def parse_bytes(text: str | int) -> int:
    """``128MB`` / ``64 MiB`` / ``1e8`` -> bytes."""
    if isinstance(text, int):
        return text
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    clean = str(text).strip().upper().replace(" ", "")
    number = clean.rstrip("KMGIB")
    unit = clean[len(number):]
    try:
        value = int(float(number) * units[unit])
    except (KeyError, ValueError):
        raise ValueError(f"{text!r} is not a size (e.g. 128MB, 64MiB, 100000000)") from None
    if not 0 < value < _MAX_CHUNK_BYTES:
        raise ValueError(f"chunk size {text!r} must be between 1 byte and 2 GiB")
    return value


def _plan_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two plans, in words ('' when nothing does)."""
    if old.get("format") != new["format"]:
        return "it was written by an older focal-pl (parts of --part-size items)"
    diffs = []
    if old.get("chunk_bytes") != new["chunk_bytes"]:
        diffs.append(f"--chunk-bytes {old.get('chunk_bytes'):,} there, {new['chunk_bytes']:,} now")
    before, now = old.get("sources", []), new["sources"]
    if len(before) != len(now):
        diffs.append(f"{len(before)} source(s) there, {len(now)} now")
    for number, (a, b) in enumerate(zip(before, now), 1):
        if (a.get("class"), a.get("where")) != (b["class"], b["where"]):
            diffs.append(f"source {number} is {a.get('name')} ({a.get('where')}) there, {b['name']} ({b['where']}) now")
        elif a.get("items") != b["items"]:
            diffs.append(f"source {number} ({b['name']}) had {a.get('items'):,} items there, {b['items']:,} now "
                         "(--include-authentic, or files added or removed)")
        elif a.get("list_sha256") != b["list_sha256"]:
            diffs.append(f"source {number} ({b['name']}) lists other files than there")
    return "; ".join(diffs)


@dataclass
class _Journal:
    """The finished chunks of a job (``progress.jsonl``), checked against the chunk files."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.entries[-1]["end"] if self.entries else 0

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["chunk"]]

    @classmethod
    def load(cls, output: Path, repair: bool = False) -> _Journal:
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

    def damaged(self, output: Path) -> list[str]:
        """Journaled chunks that are now missing or of another size."""
        return [e["chunk"] for e in self.chunks if not _same_size(output, e)]


def _same_size(output: Path, entry: dict[str, Any]) -> bool:
    chunk = output / entry["chunk"]
    return chunk.is_file() and chunk.stat().st_size == entry["bytes"]


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class _ChunkWriter:
    """Collects packed items in task order; writes a chunk once it holds ``chunk_bytes``."""

    def __init__(self, output: Path, journal: _Journal, chunk_bytes: int, tasks: _Tasks) -> None:
        self.output = output
        self.journal = journal
        self.chunk_bytes = chunk_bytes
        self.tasks = tasks
        self.first = journal.done
        self.items: list[bytes] = []
        self.sources: dict[int, int] = {}
        self.size = 0
        self.skipped: list[dict[str, str]] = []
        self.listing: list[str] = []  # the chunk's item list (what the test-overlap check reads)
        self.number = len(journal.chunks)

    def add(self, task: int, packed: bytes | None, where: str, reason: str) -> None:
        if packed is None:
            self.skipped.append({"item": where, "reason": reason})
        else:
            fields = _unpack_item(packed)
            name = str(json.loads(bytes(fields["meta"])).get("name", "")).replace("\t", " ").replace("\n", " ")
            self.listing.append(f"{hashlib.sha256(fields['image']).hexdigest()}\t{name}\n")
            self.items.append(packed)
            which = self.tasks.locate(task)[0]
            self.sources[which] = self.sources.get(which, 0) + 1
            self.size += len(packed)
        if self.size >= self.chunk_bytes:
            self.flush(task + 1)

    def flush(self, end: int) -> None:
        if end == self.first:
            return
        entry: dict[str, Any] = {"first": self.first, "end": end, "chunk": None, "items": len(self.items),
                                 "bytes": 0, "sha256": None, "sources": sorted(self.sources.items()),
                                 "skipped": self.skipped}
        if self.items:
            data = _pack_chunk(self.items)
            name = f"chunk-{self.number:06d}.bin"
            write_atomic(self.output / f"{name}{ITEMS}", "".join(self.listing))
            temporary = self.output / f".{name}.tmp"
            _fsync_write(temporary, data)
            os.replace(temporary, self.output / name)
            entry.update(chunk=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
            self.number += 1
        with open(self.output / JOURNAL, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.journal.entries.append(entry)
        self.first, self.items, self.sources, self.size, self.skipped, self.listing = end, [], {}, 0, [], []


def write_shards(
    sources: Sequence[ForgerySource],
    output_dir: str | Path,
    chunk_bytes: str | int = "128MB",
    num_workers: int = 1,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Convert ``sources`` into streaming shards in ``output_dir``; returns the manifest, with
    ``run`` added: ``state`` (``written``; ``resumed``; ``complete``: nothing to do; ``repaired``:
    complete, but index.json / manifest.json had to be rewritten from the journal), ``resumed_from``
    (items done before this call) and ``damaged`` (journaled chunks now missing or of another size).

    Chunk by chunk: a rerun with the same arguments resumes after the last finished chunk (and
    writes the very chunks an unbroken run would have), or says that the job is complete. Other
    arguments raise ``ShardJobError``; Ctrl-C raises ``ShardingInterrupted`` saying where it stopped.
    ``num_workers`` processes read and validate the items (1: this process).
    """
    say = say or (lambda text: log.info("%s", text))
    output = Path(output_dir).expanduser()
    size = parse_bytes(chunk_bytes)
    tasks = _Tasks(sources)
    plan = {"format": FORMAT, "chunk_bytes": size, "items": len(tasks),
            "sources": [_describe_source(s) for s in sources]}
    _claim(output, plan)
    journal = _Journal.load(output, repair=True)
    _remove_strays(output, journal)
    total, done = len(tasks), journal.done
    if done == total:
        manifest, _ = _load_json(output / MANIFEST)
        index, _ = _load_json(output / INDEX)
        if isinstance(manifest, dict) and "chunks" in manifest and isinstance(index, dict) and "chunks" in index:
            return {**manifest, "run": {"state": "complete", "resumed_from": done,
                                        "damaged": journal.damaged(output)}}
    if done:
        say(f"resuming {output}: {done:,} of {total:,} items already done in {len(journal.chunks)} chunk(s); "
            f"converting the remaining {total - done:,}")
    writer = _ChunkWriter(output, journal, size, tasks)
    bar = _progress(total, progress, done)
    try:
        for result in _results(tasks, range(done, total), num_workers):
            writer.add(*result)
            bar.update(1)
        writer.flush(total)
    except KeyboardInterrupt:
        bar.close()
        raise ShardingInterrupted(
            f"interrupted after {journal.done:,} of {total:,} items ({len(journal.chunks)} chunk(s) are safely "
            f"in {output}); run the same command again to resume from there"
        ) from None
    bar.close()
    manifest = _finish(output, sources, journal, size)
    state = "written" if not done else "resumed" if done < total else "repaired"
    return {**manifest, "run": {"state": state, "resumed_from": done, "damaged": journal.damaged(output)}}


def _claim(output: Path, plan: dict[str, Any]) -> None:
    """Make ``output`` this job's folder, or raise ``ShardJobError`` naming what differs."""
    plan_file = output / PLAN
    if plan_file.is_file():
        try:
            old = json.loads(plan_file.read_text())
            difference = _plan_difference(old, plan)
        except (ValueError, TypeError, AttributeError):
            raise ShardJobError(f"{plan_file} is unreadable; give another --out (or empty this folder) to start "
                                "afresh") from None
        if difference:
            raise ShardJobError(
                f"{output} holds a shard job made with other arguments: {difference}; rerun it with its own "
                f"arguments to resume, or give another --out (or empty this folder) to start afresh"
            )
        return
    elif output.is_dir() and any(p for p in output.iterdir() if not p.name.startswith(".")):
        raise ShardJobError(
            f"{output} is not empty and holds no shard job ({PLAN} is missing); give a new or empty --out folder"
        )
    output.mkdir(parents=True, exist_ok=True)
    write_atomic(plan_file, json.dumps(plan, indent=1))


def _remove_strays(output: Path, journal: _Journal) -> None:
    """Chunks of an interrupted write that the journal does not hold, and temporary files."""
    kept = {e["chunk"] for e in journal.chunks}
    for path in output.glob("chunk-*.bin"):
        if path.name not in kept:
            path.unlink()
    for path in output.glob(f"chunk-*.bin{ITEMS}"):
        if path.name[: -len(ITEMS)] not in kept:
            path.unlink()
    for path in output.glob(".chunk-*.tmp"):
        path.unlink()
    if journal.done < journal_total(output):
        for name in (INDEX, MANIFEST):
            (output / name).unlink(missing_ok=True)


def journal_total(output: Path) -> int:
    """The number of items the folder's job converts (from plan.json; 0 when unknown)."""
    try:
        return int(json.loads((output / PLAN).read_text())["items"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _results(tasks: _Tasks, todo: range, workers: int) -> Iterator[tuple[int, bytes | None, str, str]]:
    """Packed items in task order, from this process or from ``workers`` processes."""
    if workers <= 1:
        for task in todo:
            yield tasks(task)
        return
    from multiprocessing import get_context

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: children never see Ctrl-C
    try:
        pool = get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(tasks,))
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield from pool.imap(_worker_run, todo, chunksize=4)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _progress(total: int, enabled: bool, done: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="img", desc="sharding", disable=not enabled)


def _finish(output: Path, sources: Sequence[ForgerySource], journal: _Journal, chunk_bytes: int) -> dict[str, Any]:
    if not journal.chunks:
        raise ShardJobError(f"no readable item in any source; nothing was written to {output}")
    index, manifest = index_and_manifest(journal.entries, [_describe_source(s) for s in sources], chunk_bytes)
    write_atomic(output / INDEX, json.dumps(index))
    write_atomic(output / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def index_and_manifest(entries: list[dict[str, Any]], described: list[dict[str, Any]],
                       chunk_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """litdata's ``index.json`` and our ``manifest.json`` from the journal's entries."""
    chunks = [e for e in entries if e["chunk"]]
    index = {"chunks": [{"chunk_bytes": c["bytes"], "chunk_size": c["items"], "dim": None, "filename": c["chunk"]}
                        for c in chunks],
             "config": _litdata_config(chunk_bytes), "updated_at": str(time.time())}
    skipped = [s for e in entries for s in e["skipped"]]
    written = [0] * len(described)
    for entry in chunks:
        for which, count in entry["sources"]:
            written[which] += count
    manifest = {
        "focal_pl": __version__, "format": FORMAT, "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "sources": [{**d, "items_written": n} for d, n in zip(described, written)],
        "items_written": sum(c["items"] for c in chunks), "items_skipped": len(skipped), "skipped": skipped,
        "chunks": {c["chunk"]: {"items": c["items"], "bytes": c["bytes"], "sha256": c["sha256"]} for c in chunks},
    }
    return index, manifest


# ---------------------------------------------------------------- reading and verifying


@dataclass(frozen=True)
class Chunk:
    name: str
    items: int
    bytes: int | None
    sha256: str | None


class ChunkProblem(Exception):
    """An item that cannot be read because of its chunk: ``where`` (the chunk file) and ``reason``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def _load_json(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return None, "missing"
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"not readable JSON ({str(error)[:80]})"


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
        index, index_error = _load_json(self.path / INDEX)
        manifest, manifest_error = _load_json(self.path / MANIFEST)
        listed = summed = None
        try:
            listed = _chunks_of_index(index) if index is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            index_error = "not a litdata index (no chunk list)"
        try:
            summed = _chunks_of_manifest(manifest) if manifest is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            manifest_error = "not a shard manifest (no chunk checksums)"
        journal = _Journal.load(self.path) if (self.path / JOURNAL).is_file() and (index_error or manifest_error) \
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
            if _chunk_structure(path, None, None) is None:
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
            path = self.path / f"{chunk.name}{ITEMS}"
            if not path.is_file():
                return None
            rows = [tuple(line.split("\t", 1)) for line in path.read_text().splitlines()]
            if len(rows) != chunk.items:
                return None
            listed += rows
        return listed

    def check_chunk(self, chunk: int, verify: bool | None = None) -> str | None:
        """Why chunk ``chunk`` is unusable, or None; verified once per process."""
        if chunk in self._status:
            return self._status[chunk]
        info = self.chunks[chunk]
        reason = _chunk_structure(self.chunk_path(chunk), info.items, info.bytes)
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
            return _unpack_item(data)
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
    from tqdm import tqdm

    for number in tqdm(range(len(folder.chunks)), desc="verifying chunks", unit="chunk", disable=not progress):
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


def _sample_name(sample: dict[str, Any]) -> str:
    """The stored name of a sample, or a placeholder when even its meta is unreadable."""
    try:
        return str(sample_meta(sample)["name"])
    except Exception:  # noqa: BLE001
        return "a shard sample with unreadable meta"


class StreamItem:
    """A stored shard sample -> a batch item (an undecodable one reported and skipped)."""

    def __init__(self, image_size: int, augment: Augmentations | None = None) -> None:
        self.image_size = image_size
        self.augment = augment

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        try:
            image, mask, meta = decode_sample(sample)
        except Exception as error:  # noqa: BLE001 - reported by the training process, once per item
            return skipped_item([problem(_sample_name(sample), error)])
        return prepare_item(image, mask, meta["name"], self.image_size, self.augment, seed=seed)


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


# ---------------------------------------------------------------- the weighted epoch schedule


def exact_quotas(sizes: Sequence[int], weights: Sequence[float] | None = None,
                 repeats: Sequence[int] | None = None) -> list[int]:
    """Items of each folder in one epoch.

    ``repeats``: every item ``r`` times. ``weights``: shares of the epoch; the epoch is the shortest
    in which every item of every folder appears at least once at these shares (with the paper's
    weights, size x repeat factor, that is exactly the repeat factors); largest remainders make the
    counts add up. Neither: every item once.
    """
    if repeats is not None and weights is not None:
        raise ValueError("give either weights (shares of an epoch) or repeats (times per item), not both")
    if repeats is not None:
        if len(repeats) != len(sizes) or any(int(r) != r or r < 1 for r in repeats):
            raise ValueError(f"repeats must be {len(sizes)} whole numbers >= 1, got {list(repeats)}")
        return [int(n) * int(r) for n, r in zip(sizes, repeats)]
    if weights is None:
        return [int(n) for n in sizes]
    if len(weights) != len(sizes) or any(w <= 0 for w in weights):
        raise ValueError(f"weights must be {len(sizes)} positive numbers, got {list(weights)}")
    total_weight = float(sum(weights))
    length = max(math.ceil(n * total_weight / w - 1e-9) for n, w in zip(sizes, weights))
    ideal = [length * w / total_weight for w in weights]
    quotas = [math.floor(x + 1e-9) for x in ideal]
    for which in sorted(range(len(sizes)), key=lambda i: quotas[i] - ideal[i])[: length - sum(quotas)]:
        quotas[which] += 1
    return quotas


class MixSchedule:
    """The exact, seeded order of an epoch over shard folders, and each DDP rank's part of it.

    Each folder contributes exactly its quota (``exact_quotas``): whole passes over its items plus,
    for a fractional share, a seeded subset. A folder's stream visits its chunks in a seeded order,
    items shuffled within windows of ``window`` chunks; the folders' streams are interleaved by a
    seeded permutation of their labels, so every stretch of the epoch holds the folders at their
    shares. The epoch is padded to a multiple of ranks x batch size with its own first positions,
    and rank ``r`` takes the ``r``-th contiguous part: equal batch counts, the union of all ranks is
    the whole epoch, and each rank reads about 1/ranks of the chunks (each verified once per
    process). Everything is a function of (seed, epoch): a resumed run serves what an unbroken
    one would have.
    """

    def __init__(self, chunk_items: Sequence[Sequence[int]], weights: Sequence[float] | None = None,
                 repeats: Sequence[int] | None = None, seed: int = 0, shuffle: bool = True, window: int = 4,
                 exclude: Sequence[Sequence[int]] | None = None) -> None:
        self.chunk_items = [np.asarray(c, dtype=np.int64) for c in chunk_items]
        # the items each folder may serve (None: all of them); ``exclude`` holds a validation split out
        self.allowed: list[np.ndarray | None] = [
            None if exclude is None or not len(exclude[f])
            else np.setdiff1d(np.arange(int(c.sum()), dtype=np.int64), np.asarray(exclude[f], dtype=np.int64))
            for f, c in enumerate(self.chunk_items)]
        self.sizes = [int(c.sum()) if a is None else len(a) for c, a in zip(self.chunk_items, self.allowed)]
        if not any(self.sizes):
            raise ValueError("the shard folders hold no item")
        if 0 in self.sizes:
            empty = [i for i, n in enumerate(self.sizes) if n == 0]
            raise ValueError(f"shard folder(s) {empty} hold no item; leave them out of the mix")
        self.quotas = exact_quotas(self.sizes, weights, repeats)
        self.seed = int(seed) % 2**63
        self.shuffle = shuffle
        self.window = max(1, window)
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return sum(self.quotas)

    def padded_length(self, replicas: int, batch_size: int) -> int:
        unit = replicas * batch_size
        return -(-len(self) // unit) * unit

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def _visits(self, folder: int, members: np.ndarray | None, rng: np.random.Generator | None) -> np.ndarray:
        """One pass over ``folder`` (or over ``members``, sorted item numbers), chunk by chunk."""
        starts = np.concatenate([[0], np.cumsum(self.chunk_items[folder])])
        members = self.allowed[folder] if members is None else members
        if members is None:
            groups = [np.arange(starts[c], starts[c + 1]) for c in range(len(starts) - 1)]
        else:
            cut = np.searchsorted(members, starts[1:-1])
            groups = np.split(members, cut)
        if rng is None:
            return np.concatenate(groups)
        groups = [groups[c] for c in rng.permutation(len(groups))]
        windows = [np.concatenate(groups[i : i + self.window]) for i in range(0, len(groups), self.window)]
        for block in windows:
            rng.shuffle(block)
        return np.concatenate(windows)

    def _stream(self, folder: int, epoch: int) -> np.ndarray:
        passes, rest = divmod(self.quotas[folder], self.sizes[folder])
        pieces = []
        for number in range(passes):
            pieces.append(self._visits(folder, None, self._rng(epoch, folder, number) if self.shuffle else None))
        if rest:
            rng = self._rng(epoch, folder, passes)
            pool = self.allowed[folder]
            chosen = rng.choice(self.sizes[folder], rest, replace=False)
            members = np.sort(chosen if pool is None else pool[chosen])
            pieces.append(self._visits(folder, members, rng if self.shuffle else None))
        return np.concatenate(pieces)

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(folder, item) of every position of the epoch, before padding."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1], self._cached[2]
        counts = np.asarray(self.quotas)
        if self.shuffle:
            labels = np.repeat(np.arange(len(counts), dtype=np.int16), counts)
            self._rng(epoch, -1 % 2**32).shuffle(labels)
        else:  # evenly spread: the k-th item of a folder at (k + 1/2) / quota of the epoch
            spots = np.concatenate([(np.arange(n) + 0.5) / n for n in counts])
            labels = np.repeat(np.arange(len(counts), dtype=np.int16), counts)[np.argsort(spots, kind="stable")]
        items = np.empty(len(labels), dtype=np.int64)
        for folder in range(len(counts)):
            items[labels == folder] = self._stream(folder, epoch)
        self._cached = (epoch, labels, items)
        return labels, items

    def rank_positions(self, replicas: int, rank: int, batch_size: int) -> np.ndarray:
        """Positions (into the padded epoch) that rank ``rank`` serves, in order."""
        share = self.padded_length(replicas, batch_size) // replicas
        return np.arange(rank * share, (rank + 1) * share, dtype=np.int64)

    def keys(self, epoch: int, replicas: int = 1, rank: int = 0, batch_size: int = 1,
             skip: int = 0) -> Iterator[tuple[int, int, int, int]]:
        """``(epoch, position, folder, item)`` of each item rank ``rank`` serves, after ``skip`` items."""
        labels, items = self.order(epoch)
        positions = self.rank_positions(replicas, rank, batch_size)[skip:]
        wrapped = positions % len(labels)
        for position, folder, item in zip(positions.tolist(), labels[wrapped].tolist(), items[wrapped].tolist()):
            yield epoch, position, folder, item


class ScheduleSampler(DistributedSampler):
    """Serves one rank's part of a ``MixSchedule`` epoch: a ``DistributedSampler`` (so that Lightning
    leaves it in place) with ``skip``, which ``ResumableDataLoader`` sets to resume mid-epoch."""

    def __init__(self, dataset, schedule: MixSchedule, num_replicas: int, rank: int, batch_size: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=True)
        self.schedule = schedule
        self.batch_size = batch_size
        self.skip = 0

    def __len__(self) -> int:
        return self.schedule.padded_length(self.num_replicas, self.batch_size) // self.num_replicas

    def __iter__(self):
        skip, self.skip = self.skip, 0
        return self.schedule.keys(self.epoch, self.num_replicas, self.rank, self.batch_size, skip)


class ShardStream:
    """Map-style data set over ``(epoch, position, folder, item)`` keys: reads (verifying each chunk
    when first opened in this process), decodes, augments (seeded by seed, epoch and position).
    An unreadable item is reported in ``problems`` and another takes its place (the same item of
    the next chunks, then of the next folders), so batches keep their size and DDP ranks their steps.
    """

    def __init__(self, folders: list[ShardFolder], transform: StreamItem, seed: int = 0,
                 max_substitutes: int = 16) -> None:
        self.folders = folders
        self.transform = transform
        self.seed = seed
        self.max_substitutes = max_substitutes
        self.length = sum(len(f) for f in folders)
        self.places = [(f, c) for f in range(len(folders)) for c in range(len(folders[f].chunks))]

    def __len__(self) -> int:
        return self.length

    def _candidates(self, folder: int, item: int) -> Iterator[tuple[int, int]]:
        yield folder, item
        chunk, offset = self.folders[folder].locate(item)
        places = self.places
        start = places.index((folder, chunk))
        for step in range(1, min(self.max_substitutes, len(places) - 1) + 1):
            f, c = places[(start + step) % len(places)]
            target = self.folders[f]
            yield f, int(target.starts[c]) + offset % target.chunks[c].items

    def __getitem__(self, key: tuple[int, int, int, int]) -> dict[str, Any]:
        epoch, position, folder, item = key
        problems: list[tuple[str, str]] = []
        for f, candidate in self._candidates(folder, item):
            try:
                sample = self.folders[f].read(candidate)
            except ChunkProblem as bad:
                problems.append((bad.where, bad.reason))
                continue
            seed = hash((self.seed, epoch, position)) if self.transform.augment is not None else None
            result = self.transform(sample, seed)
            if "image" in result:
                result.update(skipped=len(problems), problems=problems)
                return result
            problems += result["problems"]
        return skipped_item(problems)


class StreamingShards:
    """Training stream over shard folders, mixed exactly by ``weights`` or ``repeats`` (see
    ``MixSchedule``), decoded in the loader workers.

    Args:
        paths: shard folders (e.g. one per training set).
        weights: shares of an epoch per folder, e.g. the paper's size x repeat factor
            ([200000, 200000, 200000, 200000, 204920, 40200]); default: every item once.
        repeats: instead of weights, how many times each folder's items appear in an epoch (the
            paper: [1, 1, 1, 1, 40, 20]).
        shuffle: shuffle the order each epoch (chunks, items within windows of chunks, folders).
        seed: the order's seed (the same on every rank).
        window: chunks whose items are shuffled together (more: better mixing, more open chunks).
    """

    def __init__(
        self, paths: list[str], weights: list[float] | None = None, repeats: list[int] | None = None,
        shuffle: bool = True, seed: int = 0, window: int = 4,
    ) -> None:
        if not paths:
            raise ValueError("StreamingShards needs at least one shard folder")
        for name, values in (("weights", weights), ("repeats", repeats)):
            if values is not None and len(values) != len(paths):
                raise ValueError(f"{len(paths)} shard folders but {len(values)} {name}")
        if weights is not None and repeats is not None:
            raise ValueError("StreamingShards takes weights (shares) or repeats (times per item), not both")
        for path in paths:
            if not Path(path).expanduser().is_dir():
                raise FileNotFoundError(f"{path}: no such shard folder (make it with `focal-pl data shard`)")
        self.paths = [str(Path(p).expanduser()) for p in paths]
        self.weights = weights
        self.repeats = repeats
        self.shuffle = shuffle
        self.seed = seed
        self.window = window
        self._folders: list[ShardFolder] | None = None
        self.held_out: list[np.ndarray] | None = None

    def folders(self) -> list[ShardFolder]:
        """The folders' chunk lists (read once; what was unreadable is logged here, in the training process)."""
        if self._folders is None:
            self._folders = [ShardFolder(p) for p in self.paths]
            for folder in self._folders:
                for where, reason in folder.notes:
                    log.warning("shards: %s: %s", where, reason)
        return self._folders

    def schedule(self) -> MixSchedule:
        return MixSchedule([f.chunk_items() for f in self.folders()], self.weights, self.repeats,
                           seed=self.seed, shuffle=self.shuffle, window=self.window, exclude=self.held_out)

    def hold_out(self, size: int, seed: int = 0) -> list[ShardSource]:
        """``size`` distinct items drawn at random (seeded) over all folders, taken out of every
        training epoch, as validation sources (the official code validates on 1000 training-mix
        images). The same items on every rank and in every resumed run."""
        self.held_out = draw_held_out([len(f) for f in self.folders()], size, seed, "the shard folders")
        return [ShardSource(path).subset(items) for path, items in zip(self.paths, self.held_out) if len(items)]

    def loader(self, transform: StreamItem, batch_size: int, num_workers: int, rank: int = 0, replicas: int = 1,
               pin_memory: bool = False):
        """The training DataLoader of rank ``rank`` of ``replicas``: items made by ``transform``
        (a ``StreamItem``), ``batch_size`` per batch, equal batch counts on every rank; its
        ``state_dict`` resumes mid-epoch."""
        from focal_pl.data.items import collate
        from focal_pl.data.sampling import ResumableDataLoader

        dataset = ShardStream(self.folders(), transform, seed=self.seed)
        sampler = ScheduleSampler(dataset, self.schedule(), replicas, rank, batch_size)
        return ResumableDataLoader(
            dataset, sampler, batch_size=batch_size, drop_last=True, num_workers=num_workers, collate_fn=collate,
            pin_memory=pin_memory, persistent_workers=num_workers > 0,
        )
