"""``focal-pl data check``, ``data shard`` and ``data synth``: look at a data set, convert it to shards,
write a synthetic stand-in of one in its native layout.

A source is named either by reader and root (``focal-pl data check casia /data/CASIA2``), by a
shard folder (``focal-pl data check shards/casia2``: chunk checksums verified, then every item
decoded), or by a YAML file holding one source or a list (``class_path`` + ``init_args``, as in the
configs). Exit codes: 0 all is well, 1 problems were found, 2 the command cannot run as asked,
130 interrupted.
"""

from __future__ import annotations

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


def authentic_left_out(spec: str, root: str | None, checked: list[S.ForgerySource]) -> int:
    """How many authentic images a reader would add to the ``checked`` sources (built without them)
    with ``include_authentic`` (0 for other sources)."""
    if spec not in READERS or not root:
        return 0
    return len(READERS[spec](root, include_authentic=True)) - sum(len(source) for source in checked)


def build_sources(spec: str, root: str | None, include_authentic: bool) -> list[S.ForgerySource]:
    """Sources from ``reader root``, a shard folder, or a YAML file of class_path specs."""
    if spec in READERS:
        if not root:
            raise ValueError(f"reader {spec!r} needs a root folder or list file")
        return [READERS[spec](root, include_authentic=include_authentic)]
    path = Path(spec)
    from focal_pl.data.shards import ShardSource, is_shard_folder

    if is_shard_folder(path):
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
    raise ValueError(f"{spec!r} is neither a reader ({readers}), a shard folder, nor a YAML file")


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
        # forged or authentic by the mask; a note (a resized mask, an EXIF turn) is extra
        return where, "authentic" if not mask.any() else "forged", "; ".join(notes)
    except Exception as error:  # noqa: BLE001 - every problem is reported, none stops the scan
        text = str(error)
        return where, "problem", text[len(where) + 2 :] if text.startswith(f"{where}: ") else text


def check(sources: list[S.ForgerySource], workers: int = 1, limit: int | None = None) -> dict[str, Any]:
    """Decode every distinct item; return counts, problems and notes per source."""
    from focal_pl.data.progress import tracked

    report: dict[str, Any] = {"sources": []}
    for source in sources:
        count = len(source.entries) if isinstance(source, S.FileSource) else len(source)
        tasks = [(source, i) for i in range(count if limit is None else min(count, limit))]
        if workers > 1:
            with get_context("spawn").Pool(workers) as pool:
                results = list(tracked(pool.imap(_check_one, tasks, chunksize=8), len(tasks), source.name, "item"))
        else:
            results = [_check_one(t) for t in tracked(tasks, len(tasks), source.name, "item")]
        kinds = Counter(kind for _, kind, _ in results)
        report["sources"].append({
            "source": source.name,
            "where": source.where() if hasattr(source, "where") else source.describe(0),
            "items": len(results),
            "forged": kinds["forged"], "authentic": kinds["authentic"],
            "notes": [{"item": w, "note": t} for w, k, t in results if k != "problem" and t],
            "problems": [{"item": w, "reason": t} for w, k, t in results if k == "problem"],
        })
    return report


def check_shards(path: str, verify: bool = True, workers: int = 1, limit: int | None = None) -> dict[str, Any]:
    """A shard folder: its index, manifest and chunks (sizes, headers and, with ``verify``, sha256
    sums), then every item of the intact chunks decoded."""
    from focal_pl.data.shards import ShardSource, inspect_shards

    shards = inspect_shards(path, verify=verify, progress=True)
    shards["verified"] = verify
    report: dict[str, Any] = {"shards": [shards], "sources": []}
    if shards["chunks"]:
        source = ShardSource(path, verify=False).without(shards["bad_chunks"])
        if len(source):
            report["sources"] = check([source], workers, limit)["sources"]
    return report


def print_report(report: dict[str, Any], out=None) -> int:
    """Human-readable report; returns the number of problems."""
    out = out or sys.stdout
    total = 0
    for entry in report.get("shards", []):
        problems = entry["problems"]
        total += len(problems)
        sums = (f"checksums verified: {entry['chunks'] - len(entry['bad_chunks'])} intact, "
                f"{len(entry['bad_chunks'])} bad" if entry["verified"] else
                "checksums not verified (--no-verify), sizes and headers checked")
        print(f"{entry['folder']}: {entry['chunks']} chunks, {entry['items']:,} items; {sums}", file=out)
        for where, reason in problems:
            print(f"  PROBLEM {where}: {reason}", file=out)
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
    if report.get("authentic_left_out"):
        print(f"{report['authentic_left_out']} authentic image(s) under the root were left out: "
              "add --include-authentic to check them too", file=out)
    return total


def add_arguments(parser: Any, name: str) -> None:
    """``data check`` and ``data shard``, each with a source (a reader and its root, a shard folder
    or a YAML file of sources)."""
    from jsonargparse import ArgumentParser

    parser.description = __doc__
    actions = parser.add_subcommands(dest="action")
    readers = ", ".join(READERS)
    for action, text in (("check", "decode every item and list the problems, without training; a shard folder's "
                                   "chunks are verified against their checksums first"),
                         ("shard", "convert sources to streaming shards (original image bytes kept); rerun the same "
                                   "command to resume an interrupted conversion")):
        command = ArgumentParser(prog=f"focal-pl data {action}", description=text, exit_on_error=False)
        actions.add_subcommand(action, command, help=text)
        command.add_argument("source", help=f"a reader ({readers}), a shard folder, or a YAML file of sources")
        command.add_argument("root", nargs="?", default=None,
                             help="the data set's folder or list file (with a reader name)")
        command.add_argument("--include-authentic", action="store_true",
                             help="also the authentic images (all-zero masks)")
        command.add_argument("--workers", type=int, default=1,
                             help="processes that read and decode items (default 1: this process)")
        if action == "check":
            command.add_argument("--limit", type=int | None, default=None,
                                 help="decode only the first N items of each source")
            command.add_argument("--json", dest="json_out", default=None, help="also write the report to this file")
            command.add_argument("--no-verify", dest="verify", action="store_false",
                                 help="a shard folder: skip the sha256 check of its chunks (sizes and headers are "
                                      "still checked)")
        else:
            command.add_argument("--out", required=True,
                                 help="shard folder to write; a rerun with the same arguments resumes after its last "
                                      "finished chunk")
            command.add_argument("--chunk-bytes", default="128MB",
                                 help="size of a chunk file (default 128MB; e.g. 64MB, 256MiB): the unit of reading, "
                                      "of checksums and of resuming")
    _add_synth(actions)


def _add_synth(actions: Any) -> None:
    """``data synth SET OUT``: a synthetic stand-in of one of the paper's training sets (or image/mask pairs)."""
    from jsonargparse import ArgumentParser

    from focal_pl.data.synthetic_sets import PROFILES

    text = ("write synthetic forgeries in the native layout, image sizes and formats of one of the paper's training "
            "sets (spliced content: a stand-in to try check, shard and a fit at scale, not training data)")
    command = ArgumentParser(prog="focal-pl data synth", description=text, exit_on_error=False)
    actions.add_subcommand("synth", command, help=text)
    sets = "; ".join(f"{k}: {v.what}" for k, v in PROFILES.items())
    command.add_argument("set", choices=list(PROFILES), help=f"which set to imitate ({sets})")
    command.add_argument("out", help="a new (or empty) folder; it appears whole when the set is written")
    command.add_argument("--items", type=int, default=1000, help="forged images to write (default 1000)")
    command.add_argument("--pool", default=None, help="folder of pristine photos (default: scikit-image's samples)")
    command.add_argument("--workers", type=int, default=1, help="processes that draw and encode (default 1)")
    command.add_argument("--seed", type=int, default=0, help="another seed gives other images (default 0)")
    command.add_argument("--size", type=int, default=1024, help="side of the images of the folder set (default 1024)")


def _synth(args: Any) -> int:
    from focal_pl.data.synthetic_sets import read_path, write_set

    # args.items is the namespace's method
    record = write_set(args.set, args.out, args["items"], args.pool, args.workers, args.seed, args.size)
    formats = ", ".join(f"{n} {ext}" for ext, n in sorted(record["formats"].items()))
    print(f"wrote {record['items']:,} synthetic {args.set} items to {args.out} ({formats}; mean image "
          f"{record['mean_image_bytes'] / 1e3:.0f} KB); read them with: focal-pl data check {record['reader']} "
          f"{read_path(args.set, args.out)}")
    return 0


def run(options: Any, name: str) -> int:
    """Run ``data check``, ``data shard`` or ``data synth`` with the parsed options; returns the exit code."""
    action = options.action
    args = options[action]
    args.command = action
    from focal_pl.data.shards import is_shard_folder, parse_bytes

    try:
        if action == "synth":
            return _synth(args)
        if action == "shard":
            args.chunk_bytes = parse_bytes(args.chunk_bytes)
        if action == "check" and args.root is None and is_shard_folder(args.source):
            report = check_shards(args.source, args.verify, args.workers, args.limit)
        else:
            sources = build_sources(args.source, args.root, args.include_authentic)
            if action == "shard":
                return _shard(sources, args)
            report = check(sources, args.workers, args.limit)
            left_out = authentic_left_out(args.source, args.root, sources) if not args.include_authentic else 0
            if left_out:
                report["authentic_left_out"] = left_out
    except (FileNotFoundError, ValueError) as error:
        print(f"focal-pl data {action}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"focal-pl data {action}: interrupted", file=sys.stderr)
        return 130
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 1 if print_report(report) else 0


def main(argv: list[str]) -> int:
    """``focal-pl data ...`` from an argument list (the command tree's branch, for scripts and tests)."""
    from focal_pl.cli import main as focal_main

    return focal_main(["data", *argv])


def _shard(sources: list[S.ForgerySource], args: Any) -> int:
    from focal_pl.data.shards import ShardJobError, write_shards

    try:
        manifest = write_shards(sources, args.out, chunk_bytes=args.chunk_bytes, num_workers=args.workers, say=print)
    except ShardJobError as error:
        print(f"focal-pl data shard: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(f"focal-pl data shard: {str(error) or 'interrupted; run the same command again to resume'}",
              file=sys.stderr)
        return 130
    run, out = manifest["run"], args.out
    chunks, written, skipped = len(manifest["chunks"]), manifest["items_written"], manifest["items_skipped"]
    listed = f"{skipped} skipped (listed in {out}/manifest.json)"
    if run["state"] == "complete":
        print(f"already complete: {written:,} items in {chunks} chunks, nothing to do ({out}; {listed})")
    else:
        how = {"written": "", "resumed": f" (resumed after {run['resumed_from']:,} items)",
               "repaired": " (the conversion was complete: index.json and manifest.json rewritten)"}[run["state"]]
        print(f"wrote {written:,} items to {out} in {chunks} chunks{how}; {listed}")
        for item in manifest["skipped"][:20]:
            print(f"  skipped {item['item']}: {item['reason']}")
    if run.get("damaged"):
        names = ", ".join(run["damaged"][:5])
        print(f"but {len(run['damaged'])} chunk(s) are now missing or of another size ({names}): "
              f"`focal-pl data check {out}` lists the damage", file=sys.stderr)
        return 1
    return 0
