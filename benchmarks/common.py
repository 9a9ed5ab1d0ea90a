"""What the benchmarks share: the results folder, timing, memory, Markdown tables, JSON children, the
small CPU fits of the studies, their losses and options, and writing a result with its machine line."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from focal_pl.losses import CircleLoss, DCLLoss, InfoNCELoss, NCELoss, SoftContrastiveLoss, TripletLoss

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the photos and real images beside the checkout

SCL = SoftContrastiveLoss
# the studies' losses by name: (the loss of a run of s steps, what it is)
LOSSES = {
    "nce": (lambda s: InfoNCELoss(), "InfoNCE of the official code (the mean of all positives)"),
    "nce_original": (lambda s: NCELoss(), "the original NCE, [40]: one positive per query"),
    "triplet": (lambda s: TripletLoss(), "triplet, margin 0.3"),
    "dcl": (lambda s: DCLLoss(), "decoupled contrastive"),
    "circle": (lambda s: CircleLoss(), "circle, m 0.25, gamma 80"),
    "scl_hard_batch": (lambda s: SCL(soft=False, scope="batch"), "SCL hard W, batch scope"),
    "scl_hard": (lambda s: SCL(soft=False), "SCL hard W (no coefficients), image scope"),
    "scl_fcm": (lambda s: SCL(coefficients="fcm"), "SCL soft, paper read literally (fcm), m 2, 1 round"),
    "scl_fcm_m1.5": (lambda s: SCL(coefficients="fcm", fuzziness=1.5), "same, m 1.5"),
    "scl_fcm_warmup": (lambda s: SCL(coefficients="fcm", warmup_steps=s // 3), "fcm after a hard warm-up of 1/3"),
    "scl_within": (lambda s: SCL(coefficients="within_class"), "SCL soft, within_class, m 2, 1 round"),
    "scl_within_m1.5": (lambda s: SCL(coefficients="within_class", fuzziness=1.5), "same, m 1.5"),
    "scl_within_m3": (lambda s: SCL(coefficients="within_class", fuzziness=3.0), "same, m 3"),
    "scl_within_m5": (lambda s: SCL(coefficients="within_class", fuzziness=5.0), "same, m 5"),
    "scl_within_m3_warmup": (lambda s: SCL(coefficients="within_class", fuzziness=3.0, warmup_steps=s // 3),
                             "within_class m 3 after a hard warm-up of 1/3"),
    "scl_within_10rounds": (lambda s: SCL(coefficients="within_class", max_iter=10), "same, m 2, 10 rounds"),
    "scl_within_warmup": (lambda s: SCL(coefficients="within_class", warmup_steps=s // 3),
                          "within_class after a hard warm-up of 1/3"),
    "scl_within_batch": (lambda s: SCL(coefficients="within_class", scope="batch"), "within_class, batch scope"),
}


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, process CPU seconds and the result of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def times(fn: Callable[[], Any], repeats: int, warmup: int = 0, sync: Callable[[], Any] | None = None) -> list[float]:
    """Wall seconds of ``repeats`` calls after ``warmup`` ones; ``sync`` (CUDA's) before each clock read."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 0, sync: Callable[[], Any] | None = None) -> float:
    """The median of ``times``."""
    return statistics.median(times(fn, repeats, warmup, sync))


def status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux: VmRSS, VmHWM), in bytes."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` (population, over seeds) to 3 decimals; the mean alone for one value, - for none."""
    if not values:
        return "-"
    spread = f" ± {statistics.pstdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3f}{spread}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table (an empty cell as ``| |``)."""
    line = lambda cells: " ".join(f"| {cell}" if f"{cell}" else "|" for cell in cells) + " |"  # noqa: E731
    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


def cpu_trainer(folder: str, callbacks: list, steps: int | None = None, sanity: int = 0) -> Any:
    """A quiet CPU ``Trainer``; with ``steps``, a fit validated at its end (and at its start: ``sanity=-1``)."""
    import lightning as L

    fit = {"max_steps": steps, "val_check_interval": steps, "check_val_every_n_epoch": None} if steps else {}
    return L.Trainer(accelerator="cpu", callbacks=callbacks, num_sanity_val_steps=sanity, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=folder, **fit)


@contextmanager
def cpu_fit(seed: int, steps: int, callbacks: Sequence = (), sanity: int = 0):
    """One thread, every generator seeded: yields (``cpu_trainer``, its ``ValidationRecord``, a temporary folder)."""
    import tempfile

    import lightning as L
    import torch

    from focal_pl.evaluation import ValidationRecord

    torch.set_num_threads(1)
    L.seed_everything(seed, verbose=False)
    record = ValidationRecord(save_images=0, metrics_file=None)
    with tempfile.TemporaryDirectory() as folder:
        yield cpu_trainer(folder, [record, *callbacks], steps, sanity), record, folder


def parser(doc: str) -> argparse.ArgumentParser:
    """A script's command line, described by its docstring's first line."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


def study_parser(doc: str, out: str, pool: str | None) -> argparse.ArgumentParser:
    """The options of the from-scratch CPU studies (loss_learning, real_forgeries)."""
    p = parser(doc)
    p.add_argument("--steps", type=int, default=400, help="training steps of each fit")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--size", type=int, default=96, help="side of training and validation in px")
    p.add_argument("--reuse", type=int, default=2, help="epochs over the training set")
    p.add_argument("--val", type=int, default=48, help="held-out synthetic splices")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one fit per seed and setting")
    p.add_argument("--pool", default=pool, help="folder of pristine photos (none: scikit-image's)")
    p.add_argument("--jobs", type=int, default=2, help="fits at a time (one process and one thread each)")
    p.add_argument("--out", default=str(RESULTS / out), help="results path without .json")
    return p


def splice_data(a: dict[str, Any], seed: int, size: int, boundary: str = "mixed", **data: Any) -> Any:
    """The studies' data: ``steps x batch / reuse`` training splices of the seed, ``val`` held-out ones."""
    from focal_pl.data import ForgeryDataModule, SyntheticForgeries

    def splices(length: int, seed: int) -> SyntheticForgeries:
        return SyntheticForgeries(length, size, pool=a["pool"], kinds=["splice"], boundary=boundary, seed=seed)

    return ForgeryDataModule(train=splices(a["steps"] * a["batch"] // a["reuse"], 100 + seed),
                             val=splices(a["val"], 10_000), image_size=a["size"], batch_size=a["batch"],
                             num_workers=0, **data)


def show(row: dict[str, Any]) -> dict[str, Any]:
    """Print ``row`` as one JSON line (a figure as soon as it is measured) and return it."""
    print(json.dumps(row, default=str), flush=True)
    return row


def child_json(script: str, *args: str) -> Any:
    """Run ``python script args`` in a fresh process; the JSON of its last line of output."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_processes(run: Callable[[Any], Any], tasks: list, jobs: int) -> list:
    """``run`` of every task, ``jobs`` spawned processes at a time."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(run, tasks))


def write_result(name: str, record: dict[str, Any], lines: Iterable[str] = (), results: Path | str = RESULTS,
                 title: str | None = None) -> dict[str, Any]:
    """``<results>/<name>.json`` (``record`` and its ``machine``); print the machine line and ``lines``, and
    with a ``title`` write them to ``<name>.md`` too (``name`` may be a path without .json)."""
    from focal_pl.training.provenance import machine, machine_line

    record = {"machine": record.get("machine") or machine(), **record}
    path = Path(results) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    text = "\n".join([machine_line(record["machine"]), "", *lines])
    print(text, flush=True)
    if title:
        path.with_name(path.name + ".md").write_text(f"# {title}\n\n{text}\n")
    return record
