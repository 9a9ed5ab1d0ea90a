"""Streaming shards (litdata): write any mix of sources once, keeping every image's original
encoded bytes (re-encoding a JPEG destroys the traces forensics relies on); stream them back with
weighted mixing, equal batch counts on every DDP rank, and mid-epoch resumption.

Layout of a shard folder::

    index.json            litdata's index over every chunk (written when all parts are done)
    chunk-pNNNNN-*.bin    the chunks, part by part
    parts/pNNNNN.json     a finished part: its chunks, counts and skipped items (for resuming)
    manifest.json         sources, counts, skipped items with reasons, chunk checksums

A sample holds ``image`` (the file's bytes, or a lossless PNG for generated images), ``mask``
(PNG of the final {0,1} mask at the image's size) and ``meta`` (JSON: name, source, and
``upright`` when the EXIF orientation must be applied), all three stored as plain bytes: litdata
would otherwise read a string that names an existing image file as that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focal_pl import __version__
from focal_pl.data.decode import encode_png, read_image, read_mask
from focal_pl.data.items import prepare_item, problem, skipped_item
from focal_pl.data.sources import FileSource, ForgerySource, load_pair
from focal_pl.data.transforms import Augmentations

log = logging.getLogger(__name__)


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


@dataclass
class _PartWriter:
    """litdata's ``fn``: turns (source, index) into a sample, or None (reported) for bad input."""

    sources: list[ForgerySource]
    skip_dir: str

    def __call__(self, task: tuple[int, int]) -> dict[str, Any] | None:
        which, index = task
        source = self.sources[which]
        try:
            return _raw_sample(source, index)
        except Exception as error:  # noqa: BLE001 - report, never stop the conversion
            Path(self.skip_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(self.skip_dir) / f"{os.getpid()}.tsv", "a") as handle:
                handle.write(f"{source.describe(index)}\t{str(error).replace(chr(9), ' ')}\n")
            return None


def _distinct_items(source: ForgerySource) -> int:
    """Items to write: a repeated source is written once (``repeat`` is a mixing weight)."""
    if isinstance(source, FileSource):
        return len(source.entries)
    return len(source)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shards(
    sources: Sequence[ForgerySource],
    output_dir: str | Path,
    part_size: int = 5000,
    chunk_bytes: str = "128MB",
    num_workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert ``sources`` into streaming shards in ``output_dir``; returns the manifest.

    Work is split into parts of ``part_size`` items; a part that finished is never redone, so an
    interrupted conversion resumes where it stopped when run again with the same arguments.
    """
    from litdata import optimize

    output = Path(output_dir).expanduser()
    parts_dir = output / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(w, i) for w, source in enumerate(sources) for i in range(_distinct_items(source))]
    plan = {"sources": [_describe_source(s) for s in sources], "items": len(tasks), "part_size": part_size}
    plan_file = output / "plan.json"
    if plan_file.is_file() and json.loads(plan_file.read_text()) != plan:
        raise ValueError(
            f"{output} holds shards of other sources or settings; use an empty folder "
            f"(or the same arguments to resume)"
        )
    plan_file.write_text(json.dumps(plan, indent=1))
    parts = [tasks[i : i + part_size] for i in range(0, len(tasks), part_size)]
    bar = _progress(len(tasks), progress)
    for number, part in enumerate(parts):
        record = parts_dir / f"p{number:05d}.json"
        if record.is_file():
            bar.update(len(part))
            continue
        staging = output / f".staging-p{number:05d}"
        shutil.rmtree(staging, ignore_errors=True)
        skip_dir = staging / "skipped"
        optimize(
            fn=_PartWriter(list(sources), str(skip_dir)), inputs=part, output_dir=str(staging / "data"),
            chunk_bytes=chunk_bytes, num_workers=max(1, num_workers), mode="overwrite",
            keep_data_ordered=True, verbose=False,
        )
        skipped = []
        for tsv in sorted(skip_dir.glob("*.tsv")) if skip_dir.is_dir() else []:
            skipped += [dict(zip(("item", "reason"), line.split("\t", 1))) for line in tsv.read_text().splitlines()]
        index = json.loads((staging / "data" / "index.json").read_text())
        chunks = []
        for chunk in index["chunks"]:
            name = f"chunk-p{number:05d}-{chunk['filename'].removeprefix('chunk-')}"
            os.replace(staging / "data" / chunk["filename"], output / name)
            chunks.append({**chunk, "filename": name})
        record.write_text(json.dumps({
            "config": index["config"], "chunks": chunks, "skipped": skipped,
            "written": sum(c["chunk_size"] for c in chunks),
        }))
        shutil.rmtree(staging, ignore_errors=True)
        bar.update(len(part))
    bar.close()
    return _finish(output, sources, len(parts))


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="sharding", disable=not enabled)


def _describe_source(source: ForgerySource) -> dict[str, Any]:
    return {"class": f"{type(source).__module__}.{type(source).__name__}", "name": source.name,
            "where": source.where() if isinstance(source, FileSource) else source.describe(0),
            "items": _distinct_items(source)}


def _finish(output: Path, sources: Sequence[ForgerySource], parts: int) -> dict[str, Any]:
    records = [json.loads((output / "parts" / f"p{n:05d}.json").read_text()) for n in range(parts)]
    records = [r for r in records if r["chunks"]]
    if not records:
        raise ValueError(f"no readable item in any source; nothing was written to {output}")
    config = records[0]["config"]
    chunks = [c for r in records for c in r["chunks"]]
    (output / "index.json").write_text(json.dumps({"config": config, "chunks": chunks, "updated_at": str(time.time())}))
    skipped = [s for r in records for s in r["skipped"]]
    manifest = {
        "focal_pl": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "sources": [_describe_source(s) for s in sources],
        "items_written": sum(r["written"] for r in records),
        "items_skipped": len(skipped),
        "skipped": skipped,
        "chunks": {c["filename"]: {"items": c["chunk_size"], "bytes": c["chunk_bytes"],
                                   "sha256": _sha256(output / c["filename"])} for c in chunks},
    }
    (output / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def verify_shards(path: str | Path) -> list[str]:
    """Chunks whose checksum no longer matches the manifest (empty when all are intact)."""
    folder = Path(path)
    manifest = json.loads((folder / "manifest.json").read_text())
    return [name for name, info in manifest["chunks"].items()
            if not (folder / name).is_file() or _sha256(folder / name) != info["sha256"]]


# ---------------------------------------------------------------- reading


def sample_meta(sample: dict[str, Any]) -> dict[str, Any]:
    """The name / source / upright record of a stored sample."""
    return json.loads(bytes(sample["meta"]).decode())


def decode_sample(sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A stored sample -> (image uint8 H x W x 3, mask uint8 H x W, meta)."""
    meta = sample_meta(sample)
    name = meta["name"]
    image = read_image(bytes(sample["image"]), name=name, upright=bool(meta.get("upright")))
    mask = read_mask(bytes(sample["mask"]), name=f"{name} (mask)")
    return image, mask, {"name": name, "source": meta["source"]}


def _sample_name(sample: dict[str, Any]) -> str:
    """The stored name of a sample, or a placeholder when even its meta is unreadable."""
    try:
        return str(sample_meta(sample)["name"])
    except Exception:  # noqa: BLE001
        return "a shard sample with unreadable meta"


class StreamItem:
    """litdata transform: a stored shard sample -> a batch item (bad data reported and skipped)."""

    def __init__(self, image_size: int, augment: Augmentations | None = None) -> None:
        self.image_size = image_size
        self.augment = augment

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        try:
            image, mask, meta = decode_sample(sample)
        except Exception as error:  # noqa: BLE001 - reported by the training process, once per item
            return skipped_item([problem(_sample_name(sample), error)])
        return prepare_item(image, mask, meta["name"], self.image_size, self.augment)



class ShardSource(ForgerySource):
    """Random access to a shard folder as an ordinary source (evaluation, checks, small runs)."""

    def __init__(self, path: str) -> None:
        from litdata import StreamingDataset

        self.path = str(Path(path).expanduser())
        if not (Path(self.path) / "index.json").is_file():
            raise FileNotFoundError(f"{self.path}: no index.json; not a finished shard folder")
        self.dataset = StreamingDataset(self.path)
        self.name = f"shards:{Path(self.path).name}"

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int):
        return decode_sample(self.dataset[index])


class StreamingShards:
    """Training stream over shard folders mixed by ``weights`` (litdata), decoded in the workers.

    Args:
        paths: shard folders (e.g. one per training set).
        weights: sampling weight of each folder (the paper's repeat factors: CASIA-v2 40, IMD 20);
            default in proportion to their sizes.
        shuffle: shuffle chunks and items each epoch.
        seed: shuffling seed (the same on every rank).
    """

    def __init__(
        self, paths: list[str], weights: list[float] | None = None, shuffle: bool = True, seed: int = 0,
    ) -> None:
        if not paths:
            raise ValueError("StreamingShards needs at least one shard folder")
        if weights is not None and len(weights) != len(paths):
            raise ValueError(f"{len(paths)} shard folders but {len(weights)} weights")
        for path in paths:
            if not (Path(path).expanduser() / "index.json").is_file():
                raise FileNotFoundError(f"{path}: no index.json; not a finished shard folder")
        self.paths = [str(Path(p).expanduser()) for p in paths]
        self.weights = weights
        self.shuffle = shuffle
        self.seed = seed

    def dataset(self, transform):
        """litdata dataset whose items pass through ``transform(sample) -> item dict``."""
        from litdata import CombinedStreamingDataset, StreamingDataset

        streams = [StreamingDataset(p, shuffle=self.shuffle, drop_last=True, seed=self.seed,
                                    transform=transform) for p in self.paths]
        if len(streams) == 1:
            return streams[0]
        weights = self.weights or [len(s) for s in streams]
        return CombinedStreamingDataset(streams, seed=self.seed, weights=weights, iterate_over_all=False)
