"""``focal-pl data check`` and ``focal-pl data shard``: look at a data set, convert it to shards.

A source is named either by reader and root (``focal-pl data check casia /data/CASIA2``), or by a
YAML file holding one source or a list (``class_path`` + ``init_args``, as in the configs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from focal_pl.data import sources as S

READERS: dict[str, type] = {
    "casia": S.CASIA, "columbia": S.Columbia, "coverage": S.Coverage, "nist16": S.NIST16,
    "imd2020": S.IMD2020, "misd": S.MISD, "ffpp": S.FaceForensics, "folder": S.FolderPairs,
    "catnet": S.CatNetList, "benco": S.BenCoJson, "focal_npy": S.FocalNpy,
}


def build_sources(spec: str, root: str | None, include_authentic: bool) -> list[S.ForgerySource]:
    """Sources from ``reader root``, a shard folder, or a YAML file of class_path specs."""
    if spec in READERS:
        if not root:
            raise SystemExit(f"focal-pl data: reader {spec!r} needs a root folder or list file")
        return [READERS[spec](root, include_authentic=include_authentic)]
    path = Path(spec)
    if path.is_dir() and (path / "index.json").is_file():
        from focal_pl.data.shards import ShardSource

        return [ShardSource(str(path))]
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from jsonargparse import ArgumentParser

        parser = ArgumentParser()
        parser.add_argument("--sources", type=list[S.ForgerySource])
        import yaml

        content = yaml.safe_load(path.read_text())
        items = content if isinstance(content, list) else content.get("sources", [content])
        config = parser.parse_object({"sources": items})
        return list(parser.instantiate_classes(config).sources)
    readers = ", ".join(READERS)
    raise SystemExit(
        f"focal-pl data: {spec!r} is neither a reader ({readers}), a shard folder, nor a YAML file"
    )


def _check_one(task: tuple[S.ForgerySource, int]) -> tuple[str, str, str]:
    source, index = task
    where = source.describe(index)
    try:
        if isinstance(source, S.FileSource):
            image, mask, notes = S.load_pair(source.entry(index), source.name)
        else:
            image, mask, _ = source.load(index)
            notes = []
        if mask.shape != image.shape[:2]:
            return where, "problem", f"mask {mask.shape} does not fit image {image.shape[:2]}"
        kind = "authentic" if not mask.any() else "forged"
        return where, "note" if notes else kind, "; ".join(notes)
    except Exception as error:  # noqa: BLE001 - every problem is reported, none stops the scan
        text = str(error)
        return where, "problem", text[len(where) + 2 :] if text.startswith(f"{where}: ") else text


def check(sources: list[S.ForgerySource], workers: int = 1, limit: int | None = None) -> dict[str, Any]:
    """Decode every distinct item; return counts, problems and notes per source."""
    from tqdm import tqdm

    report: dict[str, Any] = {"sources": []}
    for source in sources:
        count = len(source.entries) if isinstance(source, S.FileSource) else len(source)
        tasks = [(source, i) for i in range(count if limit is None else min(count, limit))]
        if workers > 1:
            with get_context("spawn").Pool(workers) as pool:
                results = list(tqdm(pool.imap(_check_one, tasks, chunksize=8), total=len(tasks), desc=source.name))
        else:
            results = [_check_one(t) for t in tqdm(tasks, desc=source.name)]
        kinds = Counter(kind for _, kind, _ in results)
        report["sources"].append({
            "source": source.name,
            "where": source.where() if isinstance(source, S.FileSource) else source.describe(0),
            "items": len(results),
            "forged": kinds["forged"], "authentic": kinds["authentic"],
            "notes": [{"item": w, "note": t} for w, k, t in results if k == "note"],
            "problems": [{"item": w, "reason": t} for w, k, t in results if k == "problem"],
        })
    return report


def print_report(report: dict[str, Any], out=None) -> int:
    """Human-readable report; returns the number of problems."""
    out = out or sys.stdout
    total = 0
    for entry in report["sources"]:
        problems, notes = entry["problems"], entry["notes"]
        total += len(problems)
        print(f"{entry['source']} ({entry['where']}): {entry['items']} items: {entry['forged']} forged, "
              f"{entry['authentic']} authentic, {len(notes)} with notes, {len(problems)} problems", file=out)
        for item in problems:
            print(f"  PROBLEM {item['item']}: {item['reason']}", file=out)
        for item in notes[:20]:
            print(f"  note    {item['item']}: {item['note']}", file=out)
        if len(notes) > 20:
            print(f"  ... and {len(notes) - 20} more notes", file=out)
    note = "; such items are skipped in training and evaluation" if total else ""
    print(f"{total} problem(s) in total{note}", file=out)
    return total


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="focal-pl data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    readers = ", ".join(READERS)
    for name, text in (("check", "decode every item and list the problems, without training"),
                       ("shard", "convert sources to streaming shards (original image bytes kept)")):
        command = sub.add_parser(name, help=text, description=text)
        command.add_argument("source", help=f"a reader ({readers}), a shard folder, or a YAML file of sources")
        command.add_argument("root", nargs="?", help="the data set's folder or list file (with a reader name)")
        command.add_argument("--include-authentic", action="store_true", help="also the authentic images")
        command.add_argument("--workers", type=int, default=1)
        if name == "check":
            command.add_argument("--limit", type=int, default=None, help="check only the first N items")
            command.add_argument("--json", dest="json_out", default=None, help="also write the report here")
        else:
            command.add_argument("--out", required=True, help="shard folder to write (resumes if present)")
            command.add_argument("--part-size", type=int, default=5000)
            command.add_argument("--chunk-bytes", default="128MB")
    args = parser.parse_args(argv)
    sources = build_sources(args.source, args.root, args.include_authentic)
    if args.command == "check":
        report = check(sources, args.workers, args.limit)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=1))
        return 1 if print_report(report) else 0
    from focal_pl.data.shards import write_shards

    manifest = write_shards(sources, args.out, part_size=args.part_size,
                            chunk_bytes=args.chunk_bytes, num_workers=args.workers)
    print(f"wrote {manifest['items_written']} items to {args.out} in {len(manifest['chunks'])} chunks; "
          f"{manifest['items_skipped']} skipped (listed in {args.out}/manifest.json)")
    for item in manifest["skipped"][:20]:
        print(f"  skipped {item['item']}: {item['reason']}")
    return 0
