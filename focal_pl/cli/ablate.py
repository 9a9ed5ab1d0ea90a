"""``focal-pl ablate``: the variants of an ablation set (``configs/ablation/*.yaml``), each its base
config plus a few keys, run one after another and tabulated beside the paper.

An ablation set is a YAML file::

    name: losses
    command: fit                  # or test: evaluate one --ckpt_path each way (clustering)
    base: [demo.yaml]
    paper: table_6_losses         # the paper's table the rows belong to (paper_results.yaml)
    test: [data/synthetic_test.yaml]   # configs whose data.test sets every variant ends on
    variants:
      nce:
        row: NCE (original, [40])  # the paper's row name; `extra: true` for a row the paper has not
        set: {model.init_args.loss: focal_pl.losses.NCELoss}

A fit variant trains, then its best checkpoint is tested on the ``test`` sets (``focal-pl test``,
both resolutions, beside the paper's figures); the table gives the validation score, the per-set
F1 on the feature grid as the paper scores, their mean, the paper's mean and the difference, and the
extractor's size. A test variant (one checkpoint, another clustering) gives per-set F1 and, on sets
of authentic photos only, the false-alarm rate and area (Tables VII and VIII).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from focal_pl.cli.errors import UsageError
from focal_pl.cli.runner import check_commands, added_to_every_run, resolve_file, run_one, write_results
from focal_pl.training.provenance import machine_line
from focal_pl.cli.shipped import configs_dir, resolve_config


def variants_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``label -> {"row", "extra", "set"}``; a variant given as bare keys (the older form) is its ``set``."""
    out = {}
    for label, body in (spec.get("variants") or {}).items():
        body = body or {}
        if "set" not in body and not {"row", "extra"} & set(body):
            body = {"set": body}
        out[label] = {"row": body.get("row", label), "extra": bool(body.get("extra", False)),
                      "set": body.get("set") or {}}
    return out


def overrides(keys: dict[str, Any]) -> list[str]:
    return [f"--{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in keys.items()]


def test_sets(files: list[str]) -> list[Any]:
    """The ``data.test`` lists of the given configs, concatenated (each config lays over the last
    one's list otherwise)."""
    sets: list[Any] = []
    for name in files:
        data = (yaml.safe_load(Path(resolve_config(name)).read_text()) or {}).get("data") or {}
        sets += data.get("test") or []
    if files and not sets:
        raise UsageError(f"{', '.join(files)} name no data.test sets")
    return sets


def best_checkpoint(run_dir: str | None) -> Path | None:
    folder = Path(run_dir or "") / "checkpoints"
    best = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    return best[-1] if best else (folder / "last.ckpt" if (folder / "last.ckpt").is_file() else None)


def read_results(folder: Path) -> dict[str, Any] | None:
    path = folder / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def test_variant(command: list[str], ckpt: Path, sets: list[Any], paper_table: str | None,
                 row: str | None) -> dict[str, Any]:
    """``focal-pl test`` of a variant's checkpoint on the sets; the record of that test run."""
    import subprocess

    run = ckpt.parent.parent
    before = {p.name for p in run.glob("test_*")}
    full = [*command, f"--ckpt_path={ckpt}", "--data.test=" + json.dumps(sets)]
    if paper_table:
        full += [f"--testing.paper_table={paper_table}", f"--testing.paper_row={row if row else 'null'}"]
    with (run / "test.log").open("w") as log:
        code = subprocess.run(full, stdout=log, stderr=subprocess.STDOUT).returncode
    made = sorted({p.name for p in run.glob("test_*")} - before)
    results = read_results(run / made[-1]) if made and code == 0 else None
    return {"returncode": code, "folder": str(run / made[-1]) if made else None, "results": results,
            "command": full}


def set_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(sets with forged images, sets of authentic photos only) over every variant's test results."""
    forged, pristine = [], []
    for row in rows:
        for entry in ((row.get("test") or {}).get("results") or {}).get("results", []):
            if entry["degradation"] != "none":
                continue
            target = forged if entry["forged_images"] else pristine
            if entry["set"] not in target:
                target.append(entry["set"])
    return forged, pristine


def entry_of(row: dict[str, Any], name: str, resolution: str) -> dict[str, Any]:
    for entry in ((row.get("test") or {}).get("results") or {}).get("results", []):
        if entry["set"] == name and entry["degradation"] == "none" and entry["resolution"] == resolution:
            return entry
    return {}


def cell(value: Any, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def mean(values: list[Any]) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return sum(values) / len(values) if values else None


def ablation_table(rows: list[dict[str, Any]], subcommand: str, paper_table: str | None) -> list[str]:
    """The Markdown table: one row per variant (the paper's row name, or the variant's, marked
    extra); failed runs show '-' and their status, never a number."""
    from focal_pl.evaluation import paper
    from focal_pl.evaluation.summary import parameters

    forged, pristine = set_columns(rows)
    resolution = "grid"
    header = ["variant", "paper row", "parameters"]
    if subcommand == "fit":
        header += ["val F1 (best)"]
    header += [f"{s} F1" for s in forged]
    if forged:
        header += ["mean F1", "image-res. mean F1"]
        if paper_table:
            header += ["paper mean F1", "difference"]
    header += [f"{s} false alarms (rate / area)" for s in pristine]
    header += ["minutes", "status", "run folder"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        record = row.get("best") if subcommand == "fit" else row.get("final")
        extractor = (row.get("extractor") or {})
        cells = [row["label"], ("(extra) " if row.get("extra") else "") + row.get("row", row["label"]),
                 parameters(extractor["parameters"]).split(" parameters")[0] if extractor.get("parameters") else "-"]
        if subcommand == "fit":
            cells.append(cell((record or {}).get("f1")))
        scores = [entry_of(row, s, resolution).get("f1") for s in forged]
        cells += [cell(v) for v in scores]
        if forged:
            ours = mean(scores)
            figures = {"mean_f1": ours, "image_mean_f1": mean([entry_of(row, s, "image").get("f1") for s in forged])}
            if paper_table:
                theirs = None if row.get("extra") else paper.figure(paper_table, row.get("row"), "Mean")
                difference = None if ours is None or theirs is None else ours - theirs
                figures.update(paper_mean_f1=theirs, difference=difference)
            row["table"] = figures  # the figures the row shows, in the results JSON beside the runs behind them
            cells += [cell(v) for v in figures.values()]
        for name in pristine:
            entry = entry_of(row, name, "image")
            cells.append(f"{cell(entry.get('false_alarm_rate'), 2)} / {cell(entry.get('false_alarm_area'), 3)}"
                         if entry else "-")
        cells += [f"{row['seconds'] / 60:.1f}", row["status"], row.get("run_dir") or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def add_arguments(parser: Any, name: str) -> None:
    """The set file and how to run it; Lightning options (``--trainer.max_steps 100``) go to every run."""
    parser.description = ("Run the variants of an ablation set (configs/ablation/*.yaml): each variant is the set's "
                          "base config plus a few keys; each trained variant ends on the set's test sets; one table. "
                          "Lightning options (--trainer.*, --model.*, --data.*, --config, --ckpt_path ...) are added "
                          "to every run.")
    parser.add_argument("file", help="an ablation set, e.g. losses or configs/ablation/losses.yaml")
    parser.add_argument("--base", default=None, help="use this config instead of the set's base")
    parser.add_argument("--only", nargs="+", default=None, help="run only these variants")
    parser.add_argument("--test", nargs="+", default=None, metavar="CONFIG",
                        help="end on these configs' data.test sets instead of the set's own")
    parser.add_argument("--no-test", dest="no_test", action="store_true", help="validation only: test no variant")
    parser.add_argument("--out", default=None, help="folder of the results (default: runs/ablations/<name>)")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="print each variant's row, folder and commands")


def run(args: Any, name: str) -> int:
    """Run every variant of an ablation set file and write one Markdown table."""
    extra = list(args.run_args)
    path = resolve_file(args.file, configs_dir() / "ablation")
    spec = yaml.safe_load(path.read_text())
    name = spec.get("name", path.stem)
    subcommand = spec.get("command", "fit")
    paper_table = spec.get("paper")
    base = [a for c in ([args.base] if args.base else spec.get("base", ["demo.yaml"]))
            for a in ("--config", resolve_config(c))]
    variants = variants_of(spec)
    unknown = set(args.only or []) - set(variants)
    if unknown:
        raise UsageError(f"no variant(s) {sorted(unknown)} in {path}")
    if spec.get("needs_checkpoint") and not any(a.startswith("--ckpt_path") for a in extra):
        raise UsageError(f"{path.name} evaluates a trained model; add --ckpt_path PATH "
                         "(a run folder or a .ckpt, e.g. runs/demo/version_0 after `make demo`)")
    sets = [] if args.no_test else test_sets(args.test if args.test is not None else spec.get("test") or [])
    out = Path(args.out or Path("runs") / "ablations" / name)
    chosen = [label for label in variants if not args.only or label in args.only]
    python = [sys.executable, "-m", "focal_pl"]

    def commands(label: str) -> tuple[list[str], list[str]]:
        """The variant's own command and the test of its checkpoint (without the checkpoint)."""
        keys = [*base, *spec.get("args", []), *overrides(variants[label]["set"])]
        command = [*python, subcommand, *keys, *extra]
        if subcommand == "test":
            command += ["--data.test=" + json.dumps(sets)] if sets else []
            if paper_table:
                command += [f"--testing.paper_table={paper_table}", "--testing.paper_row=null"]
        return command, [*python, "test", *keys, *[a for a in extra if not a.startswith("--ckpt_path")]]

    if not args.dry_run:  # every variant's files and folders, before the first one trains for minutes
        checked = [commands(label)[0][3:] for label in chosen]
        if subcommand == "fit" and sets and chosen:
            checked.append([*commands(chosen[0])[1][3:], "--data.test=" + json.dumps(sets)])
        found = check_commands(checked)
        if found:
            raise UsageError("\n".join(found))
    rows, lines = [], []
    for number, label in enumerate(chosen, 1):
        variant = variants[label]
        command, tester = commands(label)
        shown = f"[{number}/{len(chosen)}] {label} ({variant['row']}{', extra' if variant['extra'] else ''})"
        if args.dry_run:
            print(f"{shown} -> {out / label}\n  {shlex.join(command)}")
            if subcommand == "fit" and sets:
                print(f"  then: {shlex.join(tester)} --ckpt_path {out / label}/checkpoints/best-*.ckpt "
                      f"--data.test <{len(sets)} set(s)>")
            continue
        print(f"{shown}: {subcommand} ...", flush=True)
        row = {**run_one(command, out, label), "values": {"variant": label}, **variant}
        record_file = Path(row.get("run_dir") or out / label) / "metrics.json"
        if record_file.is_file():
            row["extractor"] = json.loads(record_file.read_text()).get("extractor")
        if subcommand == "test":
            results = read_results(Path(row["run_dir"]))
            row["test"] = {"returncode": row["returncode"], "results": results, "folder": row["run_dir"]}
            if row["status"] == "failed: no validation ran (no score)" and results:
                row["status"] = "ok"
        elif sets and row["status"] == "ok":
            ckpt = best_checkpoint(row["run_dir"])
            print(f"{shown}: test of {ckpt.name} on {len(sets)} set(s) ...", flush=True)
            row["test"] = test_variant(tester, ckpt, sets, paper_table, None if variant["extra"] else variant["row"])
            if row["test"]["returncode"] != 0:
                row["status"] = f"test failed ({row['test']['returncode']}), see {label}/test.log"
        rows.append(row)
        print(f"{shown}: {row['status']} in {row['seconds'] / 60:.1f} min", flush=True)
        lines = [f"# Ablation {name} ({path})", "", spec.get("description", "").strip(), "",
                 "F1: macro F1 over the forged and pristine pixels (the paper's), a mean over each set's forged "
                 "images, scored on the feature grid as the paper's tables are (the image-resolution mean beside "
                 "it); false alarms on authentic-only sets: the share of images with any forged pixel / the mean "
                 "forged share. " + machine_line(), "", added_to_every_run(extra), "",
                 *ablation_table(rows, subcommand, paper_table)]
        write_results(out, "ablation_results", lines, rows)  # after every variant, as sweeps do
    if args.dry_run:
        return 0
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in rows) else 1
