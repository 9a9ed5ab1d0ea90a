"""Streaming shards: write any mix of sources once, keeping every image's original encoded bytes
(re-encoding a JPEG destroys the traces forensics relies on); verify them; stream them back with an
exact weighted schedule, equal batch counts on every DDP rank, and mid-epoch resumption.

Layout of a shard folder (chunks in litdata's format, so ``litdata.StreamingDataset`` reads it too)::

    plan.json           what is being converted (sources, item count, chunk size): a rerun with
                        other arguments is refused instead of mixing two jobs in one folder
    progress.jsonl      one line per finished chunk (its items, skipped items, sha256): a rerun
                        resumes after the last finished chunk
    chunk-NNNNNN.bin    the chunks, numbered in writing order
    chunk-NNNNNN.bin.items.tsv
                        beside each chunk, one line per item: sha256 of the image bytes, original name
    index.json          litdata's index over every chunk (written when all chunks are done)
    manifest.json       sources, counts, skipped items with reasons, chunk sizes and sha256 sums

A sample holds ``image`` (the file's bytes, or a lossless PNG for generated images), ``mask``
(PNG of the final {0,1} mask at the image's size) and ``meta`` (JSON: name, source, and
``upright`` when the EXIF orientation must be applied), all three stored as plain bytes.

A chunk is verified (its size, header and sha256 against the manifest) the first time a process
opens it: a damaged, truncated or missing chunk is reported by its file and its items are skipped
through the batch's ``problems``, never silently, and never stopping a run.

One job per module, importing one way (format <- journal <- reader, writer; reader, schedule <-
stream): ``format`` (the bytes), ``journal`` (progress.jsonl), ``writer`` (the resumable job),
``reader`` (folders, chunks, checks, decoding, ``ShardSource``), ``schedule`` (the weighted epoch),
``stream`` (the training stream).
"""

from focal_pl.data.shards.format import (
    FIELDS,
    FORMAT,
    INDEX,
    ITEMS,
    JOURNAL,
    MANIFEST,
    PLAN,
    sha256_file,
)
from focal_pl.data.shards.journal import journal_total
from focal_pl.data.shards.reader import (
    Chunk,
    ChunkProblem,
    ShardFolder,
    ShardSource,
    decode_sample,
    inspect_shards,
    is_shard_folder,
    sample_meta,
    verify_shards,
)
from focal_pl.data.shards.schedule import MixSchedule, ScheduleSampler, exact_quotas
from focal_pl.data.shards.stream import ShardStream, StreamingShards, StreamItem
from focal_pl.data.shards.writer import (
    ShardingInterrupted,
    ShardJobError,
    index_and_manifest,
    parse_bytes,
    write_shards,
)

# a written plan and manifest name a source by its class's module: shards of shards keep the name
# that jobs written before this package split recorded (a resumed job compares them)
ShardSource.__module__ = __name__

__all__ = [
    "FIELDS", "FORMAT", "INDEX", "ITEMS", "JOURNAL", "MANIFEST", "PLAN", "Chunk", "ChunkProblem", "MixSchedule",
    "ScheduleSampler", "ShardFolder", "ShardJobError", "ShardSource", "ShardStream", "ShardingInterrupted",
    "StreamItem", "StreamingShards", "decode_sample", "exact_quotas", "index_and_manifest", "inspect_shards",
    "is_shard_folder", "journal_total", "parse_bytes", "sample_meta", "sha256_file", "verify_shards", "write_shards",
]
