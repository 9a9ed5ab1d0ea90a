"""The paper's ~800K training mix, simulated at scale in the readers' layouts: ``data shard`` (interrupted
and resumed), ``data check``, the stream on DDP ranks (resumed mid-epoch), the schedule at 800K items.

    python benchmarks/data_scale.py [--items 20000] [--workers 2] [--ranks 2] [--loader-workers 2] [--batches 120]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
from lightning.fabric.plugins.environments.lightning import find_free_network_port

from focal_pl.data.synthetic_sets import PROFILES, read_path, write_sets

from common import RESULTS, SHARED, table, timed, write_result

REPO = Path(__file__).resolve().parents[1]
# name (a set of focal_pl.data.synthetic_sets), distinct items in the paper's mix, repeat factor
MIX = (("sp_coco", 200_000, 1), ("cm_coco", 200_000, 1), ("cm_raise", 200_000, 1), ("cm_c_raise", 200_000, 1),
       ("casia2", 5_123, 40), ("imd2020", 2_010, 20))
PAPER_DISTINCT = sum(n for _, n, _ in MIX)  # 807,133
PAPER_RANKS = 8


def scaled_mix(items: int) -> list[dict[str, Any]]:
    """The mix scaled to about ``items`` distinct items, each set at least one item."""
    return [{"name": name, "paper_items": n, "items": max(1, round(n * items / PAPER_DISTINCT)), "repeat": r}
            for name, n, r in MIX]


def modeled_layout(mix: list[dict[str, Any]], chunk_bytes: int, bytes_per_item: dict[str, float]) -> list[list[int]]:
    """Item counts of each set's chunks, as ``data shard`` cuts them (a chunk closes at ``chunk_bytes``)."""
    layout = []
    for entry in mix:
        per_chunk = max(1, math.ceil(chunk_bytes / bytes_per_item[entry["name"]]))
        full, rest = divmod(entry["items"], per_chunk)
        layout.append([per_chunk] * full + ([rest] if rest else []))
    return layout


def shard_command(entry: dict[str, Any], raw: Path, out: Path, workers: int, chunk_bytes: str) -> list[str]:
    """The ``focal-pl data shard`` command of one set, by the reader of its layout."""
    name = entry["name"]
    return [sys.executable, "-m", "focal_pl", "data", "shard", PROFILES[name].reader, read_path(name, raw / name),
            "--out", str(out), "--workers", str(workers), "--chunk-bytes", chunk_bytes]


def tree_pss(root: int) -> int:
    """Summed PSS (bytes) of a process and its descendants (PSS splits the pages forked workers share)."""
    try:
        tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in tree:
        with suppress(psutil.Error):  # ended meanwhile
            total += process.memory_full_info().pss
    return total


@contextmanager
def peak_pss(pid: int, interval: float = 0.5):
    """``tree_pss`` every ``interval`` s while the block runs; yields a list holding the peak so far (bytes)."""
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_pss(pid))
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def cpu_seconds(who: int = resource.RUSAGE_CHILDREN) -> float:
    """User and system CPU seconds of this process (``RUSAGE_SELF``) or of the children it waited for."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_command(command: list[str], interrupt_when=None) -> dict[str, Any]:
    """Run a command in its own process group: wall, CPU, peak PSS of its tree, its output; SIGINT to the
    group (as Ctrl-C, SIGINT's default restored first) once ``interrupt_when()`` is true."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cpu, start = cpu_seconds(), time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    with peak_pss(process.pid) as memory:
        while interrupt_when is not None and process.poll() is None:
            if interrupt_when():
                os.killpg(process.pid, signal.SIGINT)
                break
            time.sleep(0.05)
        stdout, stderr = process.communicate()
    lines = [line for line in stderr.replace("\r", "\n").splitlines()
             if line.strip() and not line.lstrip().startswith(("sharding", "verifying", "shards:"))]
    return {"command": " ".join([Path(command[0]).name, *command[1:]]), "returncode": process.returncode,
            "wall_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu, "peak_rss_mb": memory[0] / 2**20,
            "stdout": stdout.strip().splitlines(), "stderr": lines}


class RawItem:
    """A loader transform that keeps only the name: the epoch pass reads (and verifies) without decoding."""

    augment = None

    def __call__(self, sample: dict[str, Any], seed: int | None = None):
        import torch

        from focal_pl.data.items import Item
        from focal_pl.data.shards import sample_meta

        return Item(name=sample_meta(sample)["name"], image=torch.zeros(1), mask=torch.zeros(1))


def _rank_main(rank: int, world: int, config: dict[str, Any]) -> None:
    """One DDP rank: the stream's first batch and rate, a mid-epoch resume in fresh loader workers
    compared item for item, an epoch read without decoding; peak memory and CPU of it all."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(config["port"]))
    import multiprocessing

    multiprocessing.set_start_method("fork", force=True)  # loader workers as under `fit` (spawn is mp.spawn's)
    import torch
    import torch.distributed as dist

    from focal_pl.data.datamodule import ForgeryDataModule
    from focal_pl.data.shards import StreamingShards
    from focal_pl.data.transforms import Augmentations

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    batch, count = config["batch_size"], config["batches"]
    out: dict[str, Any] = {"rank": rank}

    def loader(transform=None):
        stream = StreamingShards(config["paths"], repeats=config["repeats"], seed=0)
        module = ForgeryDataModule(train=stream, image_size=1024, batch_size=batch, augmentations=Augmentations(),
                                   num_workers=config["loader_workers"], pin_memory=False)
        module.trainer = type("Trainer", (), {"world_size": world, "global_rank": rank})()
        made = module.train_dataloader()
        made.dataset.transform = transform or made.dataset.transform
        return made

    def serve(made, batches, start):
        """Names of ``batches`` batches (one all_reduce each, as DDP's gradient sync), first-batch and total s."""
        names, problems, first, iterator = [], 0, None, iter(made)
        for _ in range(batches):
            item = next(iterator)
            first = first if first is not None else time.perf_counter() - start
            dist.all_reduce(torch.ones(1))
            names.append(list(item.name))
            problems += len(item.problems)
        if getattr(made, "_iterator", None) is not None:
            made._iterator._shutdown_workers()
        return names, problems, first, time.perf_counter() - start

    cpu = cpu_seconds(resource.RUSAGE_SELF)
    with peak_pss(os.getpid()) as memory:
        dist.barrier()
        start = time.perf_counter()
        unbroken_loader = loader()
        out["schedule_build_s"] = timed(lambda: unbroken_loader.sampler.schedule.order(0))[0]
        unbroken, problems, first, total = serve(unbroken_loader, count, start)
        out.update(batches_per_epoch=len(unbroken_loader), first_batch_s=first, problems=problems,
                   items_per_s_after_first=(count - 1) * batch / (total - first) if count > 1 else None)
        dist.barrier()
        broken_loader = loader()
        head = serve(broken_loader, count // 2, time.perf_counter())[0]
        state = broken_loader.state_dict()
        del broken_loader
        dist.barrier()
        resumed_loader = loader()  # fresh workers, as after a restart from a checkpoint
        resumed_loader.load_state_dict(state)
        tail, _, resume_first, _ = serve(resumed_loader, count - count // 2, time.perf_counter())
        out.update(resume_state=state, resume_first_batch_s=resume_first, resume_identical=head + tail == unbroken)
        dist.barrier()
        start, names = time.perf_counter(), []
        for item in loader(RawItem()):
            names += item.name
        out.update(epoch_items=len(names), epoch_read_s=time.perf_counter() - start, epoch_names=names)
    out.update(peak_rss_mb=memory[0] / 2**20, cpu_workers_s=cpu_seconds(),
               cpu_self_s=cpu_seconds(resource.RUSAGE_SELF) - cpu)
    Path(config["out"], f"rank{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def stream(paths: list[str], mix: list[dict[str, Any]], raw: Path, args: argparse.Namespace, work: Path) -> dict:
    """The streaming figures of every rank, and the epoch's served items per set against the repeat factors."""
    import torch.multiprocessing as mp

    out = work / "ranks"
    out.mkdir(parents=True)
    config = {"paths": paths, "repeats": [e["repeat"] for e in mix], "batch_size": args.batch_size,
              "port": find_free_network_port(),
              "loader_workers": args.loader_workers, "batches": args.batches, "out": str(out)}
    os.environ["OMP_NUM_THREADS"] = "1"
    start = time.perf_counter()
    mp.spawn(_rank_main, args=(args.ranks, config), nprocs=args.ranks, join=True)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(args.ranks)]
    counts = Counter(n for r in ranks for n in r.pop("epoch_names"))
    set_of = lambda name: Path(name).relative_to(raw).parts[0]  # noqa: E731 - from the item's original path
    served = Counter(set_of(name) for name in counts.elements())
    repeat, expected = {e["name"]: e["repeat"] for e in mix}, {e["name"]: e["items"] * e["repeat"] for e in mix}
    total, served_total = sum(expected.values()), sum(served.values())
    worst = lambda key: max(r[key] for r in ranks)  # noqa: E731
    return {
        "ranks": ranks, "wall_s": time.perf_counter() - start,
        "items_per_s": sum(r["items_per_s_after_first"] or 0 for r in ranks), "first_batch_s": worst("first_batch_s"),
        "resume_first_batch_s": worst("resume_first_batch_s"),
        "resume_identical": all(r["resume_identical"] for r in ranks), "peak_rss_mb_per_rank": worst("peak_rss_mb"),
        "epoch_served": dict(served), "epoch_expected": expected,
        "epoch_share_error_pct": {k: 100 * (served[k] / served_total - expected[k] / total) / (expected[k] / total)
                                  for k in expected},
        "epoch_items_per_rank": [r["epoch_items"] for r in ranks], "epoch_distinct_served": len(counts),
        "epoch_distinct_expected": sum(e["items"] for e in mix),
        "every_item_at_least_its_repeats": all(t >= repeat[set_of(n)] for n, t in counts.items()),
        "epoch_padding": served_total - total, "epoch_read_items_per_s": served_total / worst("epoch_read_s"),
    }


def metadata_at_scale(layout: list[list[int]], repeats: list[int], batch_size: int) -> dict:
    """The epoch schedule, index.json and manifest.json for a chunk layout (no images needed)."""
    from focal_pl.data.shards import MixSchedule, index_and_manifest

    schedule = MixSchedule(layout, repeats=repeats, seed=0)
    build, _, (labels, items) = timed(lambda: schedule.order(0))
    keys = timed(lambda: sum(1 for _ in schedule.keys(0, PAPER_RANKS, 0, batch_size)))[0]
    entries, first = [], 0
    for which, chunks in enumerate(layout):
        for number, count in enumerate(chunks):
            entries.append({"first": first, "end": first + count, "chunk": f"chunk-{len(entries):06d}.bin",
                            "items": count, "bytes": 128_000_000, "sources": [[which, count]], "skipped": [],
                            "sha256": hashlib.sha256(f"{which}-{number}".encode()).hexdigest()})
            first += count
    described = [{"class": "focal_pl.data.sources.CatNetList", "name": f"set{n}", "where": f"/data/set{n}_list.txt",
                  "items": sum(chunks), "list_sha256": "0" * 16} for n, chunks in enumerate(layout)]
    index, manifest = index_and_manifest(entries, described, 128_000_000)
    return {"items": sum(map(sum, layout)), "epoch": len(labels), "chunks": len(entries), "schedule_build_s": build,
            "rank_keys_s": keys, "schedule_mb": (labels.nbytes + items.nbytes) / 2**20,
            "index_json_kb": len(json.dumps(index)) / 1024,
            "manifest_json_kb": len(json.dumps(manifest, indent=1)) / 1024,
            "journal_kb": sum(len(json.dumps(e)) + 1 for e in entries) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="distinct items of the simulated mix")
    parser.add_argument("--pool", default=str(SHARED / "pristine") if (SHARED / "pristine").is_dir() else None,
                        help="folder of photos (default ../shared/data/pristine, else scikit-image's samples)")
    parser.add_argument("--workers", type=int, default=2, help="processes of generation, data shard and data check")
    parser.add_argument("--ranks", type=int, default=2, help="DDP ranks (CPU processes, gloo)")
    parser.add_argument("--loader-workers", type=int, default=2, help="loader workers per rank")
    parser.add_argument("--batches", type=int, default=120, help="batches per rank for the streaming figures")
    parser.add_argument("--batch-size", type=int, default=4, help="batch size per rank")
    parser.add_argument("--chunk-bytes", default="128MB", help="chunk size of data shard")
    parser.add_argument("--work", default="/tmp/data_scale", help="scratch folder (emptied first, removed after)")
    parser.add_argument("--results", default=str(RESULTS), help="where data_scale.json goes")
    args = parser.parse_args()
    from focal_pl.data.shards import inspect_shards, parse_bytes

    work, mix = Path(args.work), scaled_mix(args.items)
    raw, shards, names = work / "raw", work / "shards", [e["name"] for e in mix]
    shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {"items": sum(e["items"] for e in mix), "mix": mix,
                              "settings": {k: v for k, v in vars(args).items() if k != "results"}}
    log = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)  # noqa: E731
    log(f"generating {result['items']:,} items from {args.pool or 'scikit-image photos'}")
    cpu = cpu_seconds()  # the sets as `focal-pl data synth` writes them, by one group of processes
    wall, _, result["generated"] = timed(lambda: write_sets({e["name"]: (raw / e["name"], e["items"]) for e in mix},
                                                            args.pool, args.workers))
    result["generate"] = {"wall_s": wall, "cpu_s": cpu_seconds() - cpu}
    shard = lambda e, out: shard_command(e, raw, out, args.workers, args.chunk_bytes)  # noqa: E731
    result["shard"] = {e["name"]: run_command(shard(e, shards / e["name"])) for e in mix}
    log("sharded: " + ", ".join(f"{k} {v['wall_s']:.1f} s rc={v['returncode']}" for k, v in result["shard"].items()))
    # cm_coco interrupted half-way (in chunks) and resumed; rerun when finished; rerun with other arguments
    command = shard(mix[names.index("cm_coco")], work / "interrupted" / "cm_coco")
    journal = work / "interrupted" / "cm_coco" / "progress.jsonl"
    chunks = lambda folder: json.loads((folder / "manifest.json").read_text())["chunks"]  # noqa: E731
    half = max(1, len(chunks(shards / "cm_coco")) // 2)
    interrupted = run_command(command, lambda: journal.is_file() and len(journal.read_text().splitlines()) >= half)
    done = json.loads(journal.read_text().splitlines()[-1])["end"] if journal.is_file() and journal.read_text() else 0
    result["resume_shard"] = {
        "interrupted": interrupted, "items_done_at_interrupt": done, "resumed": run_command(command),
        "finished_rerun": run_command(command), "changed_arguments": run_command(command[:-1] + ["64MB"]),
        "identical_to_unbroken": chunks(work / "interrupted" / "cm_coco") == chunks(shards / "cm_coco")}
    result["check"] = {n: run_command([sys.executable, "-m", "focal_pl", "data", "check", str(shards / n),
                                       "--workers", str(args.workers)]) for n in names}
    result["verify"] = {}
    for name in names:
        wall, cpu, report = timed(lambda: inspect_shards(shards / name))
        result["verify"][name] = {"wall_s": wall, "cpu_s": cpu, "problems": report["problems"],
                                  "chunks": report["chunks"], "items": report["items"],
                                  "bytes": sum(p.stat().st_size for p in (shards / name).glob("chunk-*.bin"))}
    files = ("index.json", "manifest.json", "progress.jsonl")
    result["sizes"] = {n: {f: (shards / n / f).stat().st_size for f in files} for n in names}
    result["layout"] = {n: [c["chunk_size"] for c in json.loads((shards / n / "index.json").read_text())["chunks"]]
                        for n in names}
    log("streaming")
    result["stream"] = stream([str(shards / n) for n in names], mix, raw, args, work)
    stored = {n: result["verify"][n]["bytes"] / max(1, result["verify"][n]["items"]) for n in names}
    at_scale = lambda items: metadata_at_scale(  # noqa: E731
        modeled_layout(scaled_mix(items), parse_bytes(args.chunk_bytes), stored), [e["repeat"] for e in mix],
        args.batch_size)
    result["metadata_800k"] = at_scale(PAPER_DISTINCT)
    result["metadata_scaling"] = [at_scale(n) for n in (PAPER_DISTINCT // 16, PAPER_DISTINCT // 4, PAPER_DISTINCT * 4)]
    write_result("data_scale", result, tables(result), results=args.results)
    shutil.rmtree(work, ignore_errors=True)


def tables(result: dict[str, Any]) -> list[str]:
    """Per set: size, formats, shard and check time; then the figures the results page extrapolates."""
    st, meta, rs = result["stream"], result["metadata_800k"], result["resume_shard"]
    per_cpu = lambda part: result["items"] / sum(r["cpu_s"] for r in result[part].values())  # noqa: E731
    verify = list(result["verify"].values())
    figures = {
        "items per CPU-second: data shard, data check": f"{per_cpu('shard'):.1f}, {per_cpu('check'):.1f}",
        "sha256 verification alone: GiB/s":
            f"{sum(v['bytes'] for v in verify) / 2**30 / sum(v['wall_s'] for v in verify):.2f}",
        "streaming at 1024 px: items/s per rank; first batch s; after a resume s; resumed identical":
            f"{st['items_per_s'] / len(st['ranks']):.1f}; {st['first_batch_s']:.1f}; {st['resume_first_batch_s']:.1f}; "
            f"{st['resume_identical']}",
        "peak PSS per rank (with its loader workers), MiB": f"{st['peak_rss_mb_per_rank']:.0f}",
        "epoch without decoding: items/s; distinct served / expected; padding; share error, max %":
            f"{st['epoch_read_items_per_s']:.0f}; {st['epoch_distinct_served']:,} / {st['epoch_distinct_expected']:,}; "
            f"{st['epoch_padding']}; {max(map(abs, st['epoch_share_error_pct'].values())):.3f}",
        "data shard interrupted at; resumed identical; changed arguments exit":
            f"{rs['items_done_at_interrupt']:,}; {rs['identical_to_unbroken']}; "
            f"{rs['changed_arguments']['returncode']}",
        "800K: chunks; schedule s; one rank's keys s; index / manifest KiB": f"{meta['chunks']}; "
            f"{meta['schedule_build_s']:.2f}; {meta['rank_keys_s']:.2f}; {meta['index_json_kb']:.0f} / "
            f"{meta['manifest_json_kb']:.0f}",
    }
    sets = ([n, g["items"], f"{g['mean_image_bytes'] / 1e3:.0f} KB", f"{result['shard'][n]['wall_s']:.1f}",
             f"{result['check'][n]['wall_s']:.1f}", len(result["layout"][n])] for n, g in result["generated"].items())
    return [*table(["set", "items", "mean image", "shard s", "check s", "chunks"], sets), "",
            *table(["figure", "measured"], figures.items())]


if __name__ == "__main__":
    main()
