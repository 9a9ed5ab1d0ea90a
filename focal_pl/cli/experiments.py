"""Local experiment runners: ``focal-pl sweep`` (W&B sweep files, run here, offline) and
``focal-pl ablate`` (a set of config variants), each collecting the final metrics into one table.

A sweep file is W&B's own format (``method``, ``metric``, ``parameters``, ``command`` with
``${args}``), so the same file also drives ``wandb sweep`` + ``wandb agent``. Grid sweeps expand to
every combination; random sweeps draw ``--count`` configurations (``bayes`` needs a W&B server and
is drawn at random here). Each run gets its own ``metrics.json``; the table ranks them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from focal_pl.shipped import configs_dir, find_shipped, resolve_config, sweeps_dir
from focal_pl.runs import machine_line

def resolve_file(value: str, shipped: Path) -> Path:
    """A path as given, else the shipped file of that name."""
    path = Path(value)
    if path.is_file():
        return path
    found = find_shipped(value, shipped, by_name=True)
    if found:
        return found
    raise SystemExit(f"focal-pl: no such file {value!r} (nor among the shipped ones in {shipped})")


# ---------------------------------------------------------------- sweeps


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


def free_version(runs: Path, label: str) -> str:
    """``label``, or ``label-2``, ``label-3``... when a run folder of that name exists already."""
    version, n = label, 1
    while (runs / version).exists():
        n += 1
        version = f"{label}-{n}"
    return version


def run_one(command: list[str], runs: Path, label: str) -> dict[str, Any]:
    """Run one command as the run ``runs/<version>`` (the CLI's one layout: the run folder holds
    its config, checkpoints, metrics.json and the log); returns the run's record, read from its
    metrics.json. A run that exits 0 but never validated has no score: it is marked failed."""
    version = free_version(runs, label)
    folder = runs / version
    full = [*command, f"--trainer.logger.init_args.save_dir={runs.parent}", f"--run.name={runs.name}",
            f"--run.version={version}"]
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "run.log").open("w") as log:
        code = subprocess.run(full, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}).returncode
    metrics = folder / "metrics.json"
    record = json.loads(metrics.read_text()) if metrics.is_file() else {}
    status = "ok" if code == 0 and record.get("final") else (
        f"failed ({code}), see {version}/run.log" if code else "failed: no validation ran (no score)")
    return {"label": label, "version": version, "returncode": code, "status": status,
            "seconds": time.perf_counter() - started, "final": record.get("final"), "best": record.get("best"),
            "run_dir": record.get("run_dir") or str(folder), "command": full}


def write_results(out: Path, stem: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """``<stem>.md`` (the table) and ``<stem>.json`` (every run's record and command) in ``out``."""
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1, default=str))


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


def sweep_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="focal-pl sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="a W&B sweep file (e.g. sweeps/temperature.yaml)")
    parser.add_argument("--count", type=int, default=None, help="runs to draw (random) or to keep (grid)")
    parser.add_argument("--out", default=None, help="folder of the results (default: runs/sweeps/<name>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--export", default=None, metavar="FILE",
                        help="write the sweep file for `wandb sweep` with this Python as ${interpreter}, "
                             "so that `wandb agent` runs focal-pl from any shell, and stop")
    parser.epilog = "Other arguments (e.g. --trainer.max_steps 100) are added to every run."
    args, extra = parser.parse_known_args(argv)
    path = resolve_file(args.file, sweeps_dir())
    sweep = yaml.safe_load(path.read_text())
    if args.export:
        exported = {**sweep, "command": [sys.executable if c == "${interpreter}" else c for c in sweep["command"]]}
        Path(args.export).write_text(yaml.safe_dump(exported, sort_keys=False))
        print(f"wrote {args.export}: wandb sweep {args.export}, then wandb agent ID (from any shell)")
        return 0
    name = sweep.get("name", path.stem)
    extra = [a for a in extra if a != "--"]
    runs = expand(sweep, args.count, args.seed)
    out = Path(args.out or Path("runs") / "sweeps" / name)
    metric = sweep.get("metric", {}).get("name", "val/f1")
    goal = sweep.get("metric", {}).get("goal", "maximize")
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
        lines = [f"# Sweep {name} ({path})", "", f"{len(rows)} of {len(runs)} runs, ranked by the best "
                 f"{metric} ({goal}). " + machine_line(), "", added_to_every_run(extra), "",
                 *table(rows, keys, metric, goal)]
        write_results(out, "sweep_results", lines, rows)  # after every run: an interrupted sweep keeps its table
    if args.dry_run:
        return 0
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def added_to_every_run(extra: list[str]) -> str:
    """The table's line on the command-line arguments every run got on top of its own."""
    return "Arguments added to every run: " + (f"`{shlex.join(extra)}`" if extra else "none") + "."


# ---------------------------------------------------------------- ablations


def ablation_table(rows: list[dict[str, Any]], subcommand: str) -> list[str]:
    """Markdown rows of an ablation: best and final validation for training sets, the one
    validation (and its clustering time) for evaluation sets."""
    columns = ("f1", "f1_forged", "iou")
    training = subcommand == "fit"
    if training:
        header = [f"best {c}" for c in columns] + ["final f1"]
    else:
        header = list(columns) + ["clustering s"]
    lines = ["| variant | " + " | ".join(header) + " | minutes | status | run folder |",
             "|---|" + "---|" * (len(header) + 3)]
    for row in rows:
        best, final = row.get("best") or {}, row.get("final") or {}
        if training:
            cells = [best.get(c, math.nan) for c in columns] + [final.get("f1", math.nan)]
        else:
            cells = [final.get(c, math.nan) for c in columns] + [final.get("cluster_seconds", math.nan)]
        status = row["status"]
        text = [f"{v:.4f}" for v in cells] if training else [f"{v:.4f}" for v in cells[:3]] + [f"{cells[3]:.2f}"]
        lines.append(f"| {row['label']} | " + " | ".join(text)
                     + f" | {row['seconds'] / 60:.1f} | {status} | {row.get('run_dir') or '-'} |")
    return lines


def ablate_main(argv: list[str]) -> int:
    """Run every variant of an ablation set file and write one Markdown table."""
    parser = argparse.ArgumentParser(prog="focal-pl ablate", description=(
        "Run the variants of an ablation set (configs/ablation/*.yaml): each variant is the set's "
        "base config plus a few keys; one table of the results."))
    parser.add_argument("file", help="an ablation set, e.g. configs/ablation/losses.yaml")
    parser.add_argument("--base", default=None, help="use this config instead of the set's base")
    parser.add_argument("--only", nargs="+", default=None, help="run only these variants")
    parser.add_argument("--out", default=None, help="folder of the results (default: runs/ablations/<name>)")
    parser.add_argument("--dry-run", action="store_true")
    parser.epilog = "Other arguments (e.g. --trainer.max_steps 100) are added to every run."
    args, extra = parser.parse_known_args(argv)
    path = resolve_file(args.file, configs_dir() / "ablation")
    spec = yaml.safe_load(path.read_text())
    name = spec.get("name", path.stem)
    subcommand = spec.get("command", "fit")
    base = [a for c in ([args.base] if args.base else spec.get("base", ["demo.yaml"]))
            for a in ("--config", resolve_config(c))]
    extra = [a for a in extra if a != "--"]
    variants = spec["variants"]
    unknown = set(args.only or []) - set(variants)
    if unknown:
        raise SystemExit(f"focal-pl ablate: no variant(s) {sorted(unknown)} in {path}")
    if spec.get("needs_checkpoint") and not any(a.startswith("--ckpt_path") for a in extra):
        raise SystemExit(f"focal-pl ablate: {path.name} evaluates a trained model; add --ckpt_path PATH "
                         "(e.g. runs/demo/version_0/checkpoints/last.ckpt after `make demo`)")
    out = Path(args.out or Path("runs") / "ablations" / name)
    rows, lines = [], []
    for label, overrides in variants.items():
        if args.only and label not in args.only:
            continue
        command = [sys.executable, "-m", "focal_pl", subcommand, *base, *spec.get("args", []),
                   *[f"--{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                     for k, v in (overrides or {}).items()],
                   *extra]
        if args.dry_run:
            print(shlex.join(command))
            continue
        print(f"[{label}]", flush=True)
        rows.append({**run_one(command, out, label), "values": {"variant": label}})
        lines = [f"# Ablation {name} ({path})", "", spec.get("description", "").strip(), "",
                 "f1: macro F1 over the forged and pristine classes, f1_forged: the forged class alone, "
                 "iou: of the forged class; each a mean over the validation images at their own resolution. "
                 + machine_line(), "", added_to_every_run(extra), "", *ablation_table(rows, subcommand)]
        write_results(out, "ablation_results", lines, rows)  # after every variant, as sweeps do
    if args.dry_run:
        return 0
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in rows) else 1
