"""``focal-pl sweep``: a W&B sweep file run here, offline, one run after another, and one table.

A sweep file is W&B's own format (``method``, ``metric``, ``parameters``, ``command`` with
``${args}``), so the same file also drives ``wandb sweep`` + ``wandb agent``. Grid sweeps expand to
every combination; random sweeps draw ``--count`` configurations (``bayes`` needs a W&B server and
is drawn at random here). Each run gets its own ``metrics.json``; the table ranks them.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from focal_pl.cli.errors import UsageError
from focal_pl.cli.runner import check_commands, added_to_every_run, resolve_file, run_one, write_results
from focal_pl.training.provenance import machine_line
from focal_pl.cli.shipped import sweeps_dir


def sample(spec: dict[str, Any], rng: random.Random) -> Any:
    """One value of a W&B parameter spec (values / value / distributions)."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return rng.choice(spec["values"])
    kind = spec.get("distribution", "uniform" if "min" in spec else None)
    low, high = spec.get("min"), spec.get("max")
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "int_uniform":
        return rng.randint(low, high)
    if kind == "log_uniform_values":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if kind == "log_uniform":  # W&B: min / max are exponents of e
        return math.exp(rng.uniform(low, high))
    if kind == "q_uniform":
        q = spec.get("q", 1)
        return round(rng.uniform(low, high) / q) * q
    if kind == "categorical":
        return rng.choice(spec["values"])
    raise ValueError(f"unsupported parameter spec {spec}")


def expand(sweep: dict[str, Any], count: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The configurations a sweep file asks for."""
    parameters = sweep.get("parameters") or {}
    method = sweep.get("method", "grid")
    if method == "grid":
        keys = list(parameters)
        grids = []
        for key in keys:
            spec = parameters[key]
            if "values" not in spec and "value" not in spec:
                raise ValueError(f"grid sweeps need 'values' for every parameter; {key} has {spec}")
            grids.append(spec.get("values", [spec.get("value")]))
        runs = [dict(zip(keys, combo)) for combo in itertools.product(*grids)]
        return runs[:count] if count else runs
    if method not in ("random", "bayes"):
        raise ValueError(f"unknown sweep method {method!r}")
    if method == "bayes":
        print("focal-pl sweep: 'bayes' needs a W&B server; drawing the configurations at random")
    rng = random.Random(seed)
    return [{k: sample(v, rng) for k, v in parameters.items()} for _ in range(count or 10)]


def command_for(sweep: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The sweep's ``command`` with its W&B macros filled in for this machine: ``${interpreter}``
    (and a bare ``focal-pl``) become this very Python, so a run never depends on PATH."""
    args = [f"--{k}={v}" for k, v in values.items()]
    out: list[str] = []
    for part in sweep.get("command") or ["${env}", "${interpreter}", "-m", "focal_pl", "${args}"]:
        if part == "${env}":
            continue
        if part == "${args}":
            out += args
        elif part == "${args_no_hyphens}":
            out += [a[2:] for a in args]
        elif part == "${args_json}":
            out.append(json.dumps(values))
        elif part == "${interpreter}":
            out.append(sys.executable)
        elif part == "${program}":
            out.append(sweep.get("program", "focal-pl"))
        else:
            out.append(str(part))
    if out and out[0] == "focal-pl":
        out = [sys.executable, "-m", "focal_pl", *out[1:]]
    return out


def table(rows: list[dict[str, Any]], keys: list[str], metric: str, goal: str) -> list[str]:
    """Markdown table of the runs, best first."""
    name = metric.split("/")[-1]
    sign = -1 if goal == "maximize" else 1

    def value(row, which):
        entry = row.get(which) or {}
        return entry.get(name, math.nan)

    ordered = sorted(rows, key=lambda r: (math.isnan(value(r, "best")), sign * value(r, "best")))
    lines = ["| run | " + " | ".join(keys) + f" | best {metric} | final {metric} | status | run folder |",
             "|---|" + "---|" * (len(keys) + 4)]
    for row in ordered:
        status = row["status"]
        cells = [f"{row['values'].get(k):.4g}" if isinstance(row["values"].get(k), float) else str(row["values"].get(k))
                 for k in keys]
        lines.append(f"| {row['label']} | " + " | ".join(cells) +
                     f" | {value(row, 'best'):.4f} | {value(row, 'final'):.4f} | {status}"
                     f" | {row.get('run_dir') or '-'} |")
    return lines


def add_arguments(parser: Any, name: str) -> None:
    """The sweep file and how to run it; Lightning options (``--trainer.max_steps 100``) go to every run."""
    parser.description = __doc__ + ("\nLightning options (--trainer.*, --model.*, --data.*, --config ...) are added "
                                    "to every run.")
    parser.add_argument("file", help="a W&B sweep file (e.g. temperature or sweeps/temperature.yaml)")
    parser.add_argument("--count", type=int | None, default=None, help="runs to draw (random) or to keep (grid)")
    parser.add_argument("--out", default=None, help="folder of the results (default: runs/sweeps/<name>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--export", default=None, metavar="FILE",
                        help="write the sweep file for `wandb sweep` with this Python as ${interpreter}, "
                             "so that `wandb agent` runs focal-pl from any shell, and stop")


def run(args: Any, name: str) -> int:
    """Run a sweep file's configurations one after another and write one table."""
    extra = list(args.run_args)
    path = resolve_file(args.file, sweeps_dir())
    sweep = yaml.safe_load(path.read_text())
    if args.export:
        exported = {**sweep, "command": [sys.executable if c == "${interpreter}" else c for c in sweep["command"]]}
        Path(args.export).write_text(yaml.safe_dump(exported, sort_keys=False))
        print(f"wrote {args.export}: wandb sweep {args.export}, then wandb agent ID (from any shell)")
        return 0
    name = sweep.get("name", path.stem)
    runs = expand(sweep, args.count, args.seed)
    out = Path(args.out or Path("runs") / "sweeps" / name)
    metric = sweep.get("metric", {}).get("name", "val/f1")
    goal = sweep.get("metric", {}).get("goal", "maximize")
    if not args.dry_run:  # every run's files and folders, before the first one trains for minutes
        found = check_commands([(command_for(sweep, values) + extra)[3:] for values in runs])
        if found:
            raise UsageError("\n".join(found))
    rows, lines = [], []
    for i, values in enumerate(runs):
        command = command_for(sweep, values) + extra
        label = f"run{i:03d}_" + "_".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float)
                                          else f"{k.split('.')[-1]}={v}" for k, v in values.items())
        if args.dry_run:
            print(shlex.join(command))
            continue
        print(f"[{i + 1}/{len(runs)}] {values}", flush=True)
        rows.append({**run_one(command, out, label), "values": values})
        keys = list(sweep.get("parameters") or {})
        defined = " (val/score = (macro F1 + IoU) / 2, what selects the best checkpoint)" \
            if metric == "val/score" else ""
        lines = [f"# Sweep {name} ({path})", "", f"{len(rows)} of {len(runs)} runs, ranked by the best "
                 f"{metric}{defined} ({goal}). " + machine_line(), "", added_to_every_run(extra), "",
                 *table(rows, keys, metric, goal)]
        write_results(out, "sweep_results", lines, rows)  # after every run: an interrupted sweep keeps its table
    if args.dry_run:
        return 0
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in rows) else 1
