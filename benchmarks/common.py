"""What the benchmarks share: the results folder, timing, a quiet CPU trainer, and writing a result
with its machine."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


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


def write_result(name: str, record: dict[str, Any], lines: Iterable[str] = (), results: Path | str = RESULTS,
                 title: str | None = None) -> dict[str, Any]:
    """Write ``<results>/<name>.json``: ``record`` with the machine it ran on (``machine``, from
    ``focal_pl.training.provenance.machine()`` unless the record has one); print the machine line and
    ``lines`` (the tables). With a ``title``, the same text also goes to ``<name>.md`` under it."""
    from focal_pl.training.provenance import machine, machine_line

    record = {"machine": record.get("machine") or machine(), **record}
    folder = Path(results)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    text = "\n".join([machine_line(record["machine"]), "", *lines])
    print(text, flush=True)
    if title:
        (folder / f"{name}.md").write_text(f"# {title}\n\n{text}\n")
    return record
