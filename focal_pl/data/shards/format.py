"""The bytes of a shard folder: chunk and item layout (litdata's, so ``litdata.StreamingDataset``
reads the chunks too), the folder's file names, the per-chunk item lists, and checks of a chunk file."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 2  # of plan.json / progress.jsonl / manifest.json (1: parts of --part-size items)
FIELDS = ("image", "mask", "meta")
ITEMS = ".items.tsv"  # beside each chunk: "sha256 of the image bytes <TAB> original name" per item
_ITEM_HEADER = struct.Struct("<3I")  # byte sizes of image, mask, meta
MAX_CHUNK_BYTES = 2**31  # offsets are uint32
PLAN, JOURNAL, INDEX, MANIFEST = "plan.json", "progress.jsonl", "index.json", "manifest.json"

# litdata's index config for samples {"image": bytes, "mask": bytes, "meta": bytes}, uncompressed
_DATA_SPEC = json.dumps([1, {"type": "builtins.dict", "context": json.dumps(list(FIELDS)),
                             "children_spec": [{"type": None, "context": None, "children_spec": []}] * 3}])


def litdata_config(chunk_bytes: int) -> dict[str, Any]:
    """litdata's index ``config`` for chunks of ``chunk_bytes``."""
    return {"chunk_bytes": chunk_bytes, "chunk_size": None, "compression": None, "compression_level": None,
            "compression_batch_size": None, "ipc_compression": None, "data_format": ["bytes"] * 3,
            "data_spec": _DATA_SPEC, "encryption": None, "item_loader": "PyTreeLoader",
            "types": dict.fromkeys(FIELDS, "bytes")}


def pack_item(sample: dict[str, bytes]) -> bytes:
    """A sample as stored: the byte sizes of its fields (uint32 each), then the fields."""
    parts = [bytes(sample[name]) for name in FIELDS]
    return _ITEM_HEADER.pack(*map(len, parts)) + b"".join(parts)


def pack_chunk(items: list[bytes]) -> bytes:
    """litdata's chunk layout: uint32 item count, uint32 offsets[count + 1], the items."""
    start = 4 + 4 * (len(items) + 1)
    offsets = np.cumsum([start, *map(len, items)], dtype=np.int64)
    if offsets[-1] >= MAX_CHUNK_BYTES:
        raise ValueError(f"a chunk of {offsets[-1]:,} bytes is over the 2 GiB limit of the format")
    return struct.pack("<I", len(items)) + offsets.astype("<u4").tobytes() + b"".join(items)


def unpack_item(data: bytes) -> dict[str, bytes]:
    """A stored item -> its fields (``image``, ``mask``, ``meta``: bytes); ValueError if they do not add up."""
    sizes = _ITEM_HEADER.unpack_from(data, 0)
    if _ITEM_HEADER.size + sum(sizes) != len(data):
        raise ValueError(f"item of {len(data)} bytes does not hold its fields' {sum(sizes)} bytes")
    out, at = {}, _ITEM_HEADER.size
    for name, size in zip(FIELDS, sizes):
        out[name] = data[at : at + size]
        at += size
    return out


def chunk_structure(path: Path, items: int | None, size: int | None) -> str | None:
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


def item_row(fields: dict[str, bytes]) -> str:
    """An item's line in its chunk's item list (what the test-overlap check reads without reading
    chunks): the sha256 of the image bytes, a tab, the stored name."""
    name = str(json.loads(bytes(fields["meta"])).get("name", "")).replace("\t", " ").replace("\n", " ")
    return f"{hashlib.sha256(fields['image']).hexdigest()}\t{name}\n"


def read_item_list(path: Path, items: int) -> list[tuple[str, str]] | None:
    """``(sha256, name)`` of each item of a chunk's item list; None when the list is missing or does
    not hold the chunk's ``items`` items."""
    if not path.is_file():
        return None
    rows = [tuple(line.split("\t", 1)) for line in path.read_text().splitlines()]
    return rows if len(rows) == items else None


def load_json(path: Path) -> tuple[Any, str | None]:
    """A folder's JSON file (index, manifest), or None and why it cannot be read."""
    if not path.is_file():
        return None, "missing"
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"not readable JSON ({str(error)[:80]})"
