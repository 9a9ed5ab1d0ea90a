"""The figures a page quotes, and the values the results JSON files behind it hold (directly, or as
the mean, standard deviation, extremes or windowed means of a series or of a group of seeded runs,
and in GiB / MiB / percent / minutes), for the test that every quoted figure is backed by a run."""

from __future__ import annotations

import bisect
import json
import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIGURE = re.compile(r"(?<![\w.\-/@])(?<!Python )(\d+\.\d{2,})(?![\w.])")  # two decimals or more: measured, not set
NAMED = re.compile(r"([A-Za-z0-9_]+)\.(?:json|md)\b")
WINDOWS = (5, 10, 20, 25, 50, 100)
SERIES = 16


def quoted(page: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, figure, row label) of every figure in a page's prose and tables; the label is a
    table row's first cell (None in prose). Code blocks are left out: commands and configs set
    values, they do not report them."""
    inside = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
            continue
        if inside or "doi" in line:
            continue
        label = None
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            label = re.sub(r"[`*]", "", cells[0]).strip() or None
            # the label and the cells that describe (a setting's text: "circle, m 0.25") report nothing
            line = " | ".join(c for c in cells[1:] if not re.search(r"[A-Za-z]{2,}", c.replace("GiB", "")))
        for match in FIGURE.finditer(line):
            if float(match.group(1)) not in (0.0, 1.0):  # a bound (an empty or full mask), not a measurement
                yield number, match.group(1), label


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        if len(value) > SERIES and all(isinstance(v, (int, float)) for v in value):
            return  # a long series (per-image scores, a loss curve): pages quote its statistics, not its items
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, str):
        yield from (float(m) for m in re.findall(r"-?\d+\.\d+", value))


def _flat(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, (*prefix, str(k)))


def _statistics(values: list[float]) -> list[float]:
    out = [statistics.mean(values), statistics.pstdev(values), min(values), max(values)]
    return out + ([statistics.stdev(values)] if len(values) > 1 else [])


def _quantiles(values: list[float]) -> list[float]:
    import numpy as np

    return [float(q) for q in np.quantile(np.asarray(values, dtype=float), (0.1, 0.25, 0.5, 0.75, 0.9))]


def _setting(record: dict[str, Any]) -> tuple:
    """A record's text fields but its seed: what the seeded runs of one setting share."""
    return tuple(sorted((k, v) for k, v in record.items() if isinstance(v, str) and k != "seed"))


def _series_groups(records: list[Any]) -> Iterator[list[float]]:
    """Long number lists at the same place in records that share their text fields, concatenated."""
    groups: dict[tuple, dict[tuple[str, ...], list[float]]] = {}

    def series(value: Any, prefix: tuple[str, ...], into: dict[tuple[str, ...], list[float]]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                series(v, (*prefix, str(k)), into)
        elif isinstance(value, list) and len(value) > SERIES and all(isinstance(v, (int, float)) for v in value):
            into.setdefault(prefix, []).extend(float(v) for v in value)

    for record in (r for r in records if isinstance(r, dict)):
        series(record, (), groups.setdefault(_setting(record), {}))
    for pooled in groups.values():
        yield from pooled.values()


def _rates(records: list[dict[tuple[str, ...], float]]) -> Iterator[float]:
    """Over sibling records (the sets of one stage), each field's sum over another's: the rates a
    page quotes (bytes per second over every set)."""
    if len(records) < 2:
        return
    fields = set().union(*records)
    totals = {f: sum(r.get(f, 0.0) for r in records) for f in fields}
    times = [f for f in fields if re.search(r"(_s|seconds|wall)$", f[-1])]
    for a in fields:
        for b in times:
            if a != b and totals[b]:
                yield totals[a] / totals[b]


def _derived(value: Any) -> Iterator[float]:
    """Statistics of number lists (and of their first / last windows), and of each numeric field over
    the records of a list that share their text fields (the seeds of one setting)."""
    if isinstance(value, dict):
        yield from _rates([dict(_flat(v)) for v in value.values() if isinstance(v, dict)])
        for v in value.values():
            yield from _derived(v)
    elif isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            yield from _statistics([float(v) for v in value])
            if len(value) > SERIES:
                yield from _quantiles(value)
            for k in WINDOWS:
                if len(value) > k:
                    yield statistics.mean(value[:k])
                    yield statistics.mean(value[-k:])
        every = [dict(_flat(v)) for v in value if isinstance(v, dict)]
        yield from _rates(every)
        for path in set().union(*every) if len(every) > 1 else ():
            series = [r[path] for r in every if path in r]
            if len(series) > 1:
                yield from _statistics(series)  # over all records: a "mean (12 images)" row
        groups: dict[tuple, list[dict]] = {}
        for record in (v for v in value if isinstance(v, dict)):
            groups.setdefault(_setting(record), []).append(dict(_flat(record)))
        for records in groups.values():
            for path in set().union(*records):
                series = [r[path] for r in records if path in r]
                if len(series) > 1:
                    yield from _statistics(series)
        for group in _series_groups(value):
            yield from _quantiles(group)  # a per-image series pooled over the seeds of one setting
        for v in value:
            yield from _derived(v)


def records_named(document: Any, label: str) -> list[Any]:
    """The dicts anywhere in ``document`` with a text value equal to ``label`` (a table row's first
    cell: a method, variant or setting name) or a key equal to it, as the subtrees that row reports."""
    found: list[Any] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if any(isinstance(v, str) and v.strip() == label for v in value.values()):
                found.append(value)
            for k, v in value.items():
                if str(k) == label:
                    found.append(v)
                visit(v)
        elif isinstance(value, list):
            named = [v for v in value if isinstance(v, dict) and any(
                isinstance(x, str) and x.strip() == label for x in v.values())]
            if len(named) > 1:
                found.append(named)  # the seeds of one setting: their statistics
            for v in value:
                visit(v)

    visit(document)
    return found


def held_values(documents: list[Any]) -> list[float]:
    """Every value the documents hold or derive, in the units pages quote them in, sorted."""
    values: set[float] = set()
    for document in documents:
        values |= set(_numbers(document)) | set(_derived(document))
    large = [v for v in values if v > 100]
    values |= {v / 2**30 for v in large} | {v / 2**20 for v in large} | {v / 2**10 for v in large} | \
        {v / 60 for v in large} | {v / 1e6 for v in large} | {v / 1e3 for v in large} | \
        {v * 100 for v in values if 0 < v < 1}
    return sorted(values)


def is_held(figure: str, values: list[float]) -> bool:
    """Whether a value rounds to the figure as printed (to its own decimals)."""
    x, decimals = float(figure), len(figure.split(".")[1])
    half = 0.5 * 10**-decimals + 1e-9
    i = bisect.bisect_left(values, x - half)
    return i < len(values) and values[i] <= x + half


def backing(page: Path, results: Path) -> list[Path]:
    """The results JSON files behind a page: its own (``X.md`` -> ``X.json`` and ``X_previous.json``)
    and every results file it names."""
    names = {page.stem, f"{page.stem}_previous", *NAMED.findall(page.read_text())}
    names |= {f"{n}_previous" for n in list(names)}
    return sorted(p for p in results.glob("*.json") if p.stem in names)


def load(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import yaml

    return yaml.safe_load(path.read_text())


def named_near(page: Path, line: int, results: Path, radius: int = 6) -> list[Path]:
    """The results JSON files named within ``radius`` lines of ``line`` (1-based) of a guide page:
    what the figures there quote. None named: the figures there are settings, not measurements."""
    lines = page.read_text().splitlines()
    window = "\n".join(lines[max(0, line - 1 - radius): line + radius])
    names = set(NAMED.findall(window))
    names |= {f"{n}_previous" for n in list(names)}
    return sorted(p for p in results.glob("*.json") if p.stem in names)
