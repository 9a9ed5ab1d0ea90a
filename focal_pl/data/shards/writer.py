"""Writing shard folders: sources -> chunks of original bytes, by a resumable, multiprocess job (a plan,
a journal of finished chunks, workers that read and validate items) that ends with litdata's index and our manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from focal_pl import __version__
from focal_pl.files.atomic import write_atomic
from focal_pl.data.decode import encode_png
from focal_pl.data.items import problem
from focal_pl.data.shards.format import (
    FORMAT,
    INDEX,
    ITEMS,
    MANIFEST,
    MAX_CHUNK_BYTES,
    PLAN,
    item_row,
    litdata_config,
    load_json,
    pack_chunk,
    pack_item,
    unpack_item,
)
from focal_pl.data.shards.journal import Journal, journal_total
from focal_pl.data.sources import FileSource, ForgerySource, distinct_items, load_pair

log = logging.getLogger("focal_pl.data.shards")  # the package's logger: one name for every shard message


class ShardJobError(ValueError):
    """A shard job that cannot go on as asked (other arguments than the folder's job, a foreign
    folder); the message is one line saying what differs and what to do."""


class ShardingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``write_shards``; the message says where it stopped and how to resume."""


def _sample(image: bytes, mask: np.ndarray, name: str, source: str, upright: bool) -> dict[str, bytes]:
    meta = {"name": name, "source": source, "upright": upright}
    return {"image": image, "mask": encode_png(mask), "meta": json.dumps(meta).encode()}


def _raw_sample(source: ForgerySource, index: int) -> dict[str, bytes]:
    """One sample as stored: original bytes for file sources, PNG for generated ones."""
    if isinstance(source, FileSource):
        entry = source.entry(index)
        _, mask, notes = load_pair(entry, source.name)  # validates: raises on bad input
        # turned as shown: an image without a mask, or one whose mask was drawn on it turned
        upright = entry.mask is None or any("upright" in note for note in notes)
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
            return task, pack_item(_raw_sample(source, index)), "", ""
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
    if not 0 < value < MAX_CHUNK_BYTES:
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


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class _ChunkWriter:
    """Collects packed items in task order; writes a chunk once it holds ``chunk_bytes``."""

    def __init__(self, output: Path, journal: Journal, chunk_bytes: int, tasks: _Tasks) -> None:
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
            self.listing.append(item_row(unpack_item(packed)))
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
            data = pack_chunk(self.items)
            name = f"chunk-{self.number:06d}.bin"
            write_atomic(self.output / f"{name}{ITEMS}", "".join(self.listing))
            temporary = self.output / f".{name}.tmp"
            _fsync_write(temporary, data)
            os.replace(temporary, self.output / name)
            entry.update(chunk=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
            self.number += 1
        self.journal.append(self.output, entry)
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
    journal = Journal.load(output, repair=True)
    _remove_strays(output, journal)
    total, done = len(tasks), journal.done
    if done == total:
        manifest, _ = load_json(output / MANIFEST)
        index, _ = load_json(output / INDEX)
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


def _remove_strays(output: Path, journal: Journal) -> None:
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
    from focal_pl.data.progress import progress

    return progress(total, "sharding", "img", initial=done, enabled=enabled)


def _finish(output: Path, sources: Sequence[ForgerySource], journal: Journal, chunk_bytes: int) -> dict[str, Any]:
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
             "config": litdata_config(chunk_bytes), "updated_at": str(time.time())}
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

