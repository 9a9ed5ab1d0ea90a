"""What the benchmarks share: the results folder, timing, memory, Markdown tables, the small CPU fits
of the studies, and writing a result with its machine."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the photos and real images beside the checkout


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, process CPU seconds and the result of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def times(fn: Callable[[], Any], repeats: int, warmup: int = 0, sync: Callable[[], Any] | None = None) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones; ``sync`` (a CUDA
    synchronize) runs before each clock read, so that a device's queued work is counted."""
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
    """A quiet Lightning ``Trainer`` on the CPU (no logger, checkpoint, progress bar or summary) in
    ``folder``; with ``steps``, a fit of that many steps validated at its end (and at its start,
    the whole validation set, with ``sanity=-1``: the untrained score)."""
    import lightning as L

    fit = {"max_steps": steps, "val_check_interval": steps, "check_val_every_n_epoch": None} if steps else {}
    return L.Trainer(accelerator="cpu", callbacks=callbacks, num_sanity_val_steps=sanity, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=folder, **fit)


@contextmanager
def cpu_fit(seed: int, steps: int, callbacks: Sequence = (), sanity: int = 0):
    """A study's fit: one torch thread (one fit per process), every generator seeded, then
    ``cpu_trainer`` of ``steps`` in a temporary folder with a quiet ``ValidationRecord`` first in its
    callbacks; yields (trainer, record, folder)."""
    import tempfile

    import lightning as L
    import torch

    from focal_pl.evaluation import ValidationRecord

    torch.set_num_threads(1)
    L.seed_everything(seed, verbose=False)
    record = ValidationRecord(save_images=0, metrics_file=None)
    with tempfile.TemporaryDirectory() as folder:
        yield cpu_trainer(folder, [record, *callbacks], steps, sanity), record, folder


def study_options(parser: Any, out: str, pool: str | None) -> Any:
    """The options of the from-scratch CPU studies (loss_learning, real_forgeries)."""
    add = parser.add_argument
    add("--steps", type=int, default=400)
    add("--batch", type=int, default=8)
    add("--size", type=int, default=96, help="side of training and validation in px")
    add("--reuse", type=int, default=2, help="epochs over the training set")
    add("--val", type=int, default=48, help="held-out synthetic splices")
    add("--lr", type=float, default=1e-3)
    add("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add("--pool", default=pool, help="folder of pristine photos")
    add("--jobs", type=int, default=2, help="fits at a time (one process and one thread each)")
    add("--out", default=str(RESULTS / out), help="results path without .json")
    return parser


def splice_data(a: dict[str, Any], seed: int, size: int, boundary: str = "mixed", **data: Any) -> Any:
    """The studies' data: ``steps x batch / reuse`` training splices of the seed, ``val`` held-out ones."""
    from focal_pl.data import ForgeryDataModule, SyntheticForgeries

    def splices(length: int, seed: int) -> SyntheticForgeries:
        return SyntheticForgeries(length, size, pool=a["pool"], kinds=["splice"], boundary=boundary, seed=seed)

    return ForgeryDataModule(train=splices(a["steps"] * a["batch"] // a["reuse"], 100 + seed),
                             val=splices(a["val"], 10_000), image_size=a["size"], batch_size=a["batch"],
                             num_workers=0, **data)


def in_processes(run: Callable[[Any], Any], tasks: list, jobs: int) -> list:
    """``run`` of every task, ``jobs`` spawned processes at a time."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(run, tasks))


def write_result(name: str, record: dict[str, Any], lines: Iterable[str] = (), results: Path | str = RESULTS,
                 title: str | None = None) -> dict[str, Any]:
    """Write ``<results>/<name>.json`` (``name`` may be a path without .json): ``record`` with the
    machine it ran on (``machine``, from ``focal_pl.training.provenance.machine()`` unless the record
    has one); print the machine line and ``lines`` (the tables). With a ``title``, the same text also
    goes to ``<name>.md`` under it."""
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
