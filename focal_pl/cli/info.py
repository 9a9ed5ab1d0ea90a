"""``focal-pl env`` (the code, package versions and machine a run here would record) and
``focal-pl runs`` (every run under a folder, one line each, from the files it wrote)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def env_main(argv: list[str]) -> int:
    """Print the environment part of ``run.json``: code version, package versions, hardware."""
    parser = argparse.ArgumentParser(prog="focal-pl env", description=env_main.__doc__)
    parser.add_argument("--json", action="store_true", help="as JSON")
    args = parser.parse_args(argv)
    from focal_pl.provenance import code_line, environment

    info = environment()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(code_line())
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    hw = info["hardware"]
    gpus = "; ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in hw["gpus"]) or "none"
    print(f"machine: {hw['cpu']}, {hw['cpu_cores']} cores; GPUs: {gpus}; {hw['platform']}; host {hw['host']}")
    return 0


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_rows(root: Path) -> list[dict[str, Any]]:
    """One row per fit run folder under ``root`` (a folder holding ``run.json`` or checkpoints)."""
    from focal_pl.cli.runfolders import lock_holder

    rows = []
    folders = {p.parent for p in root.rglob("run.json")}
    folders |= {p.parent.parent for p in root.rglob("checkpoints/last.ckpt")}
    for folder in sorted(folders):
        run = _read(folder / "run.json")
        if run and run.get("stage") != "fit":
            continue  # test_K / predict_K / validate_K folders: evaluations of a run, not runs
        metrics = _read(folder / "metrics.json")
        state = run.get("state", "unknown (no run.json)")
        holder = lock_holder(folder)
        if holder:
            state = f"running ({holder.split(' (')[0]})"
        elif state == "running":
            state = "stopped without a word (killed?)"
        best = (metrics.get("best") or {}).get("score")
        final = metrics.get("final") or {}
        git = (run.get("code") or {}).get("git") or {}
        commit = (git.get("commit", "")[:10] + ("+" if git.get("dirty") else "")) if git else \
            (run.get("code") or {}).get("package", "-")
        rows.append({"config": folder.parent.name, "version": folder.name, "state": state,
                     "steps": run.get("step", final.get("step")), "best_score": best, "commit": commit or "-",
                     "date": (run.get("started") or "-")[:16].replace("T", " "), "folder": str(folder)})
    return rows


def runs_main(argv: list[str]) -> int:
    """List the runs under a folder (default: runs/) as one table."""
    parser = argparse.ArgumentParser(prog="focal-pl runs", description=runs_main.__doc__)
    parser.add_argument("root", nargs="?", default="runs", help="folder of the runs (default: runs)")
    parser.add_argument("--json", action="store_true", help="as JSON")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"focal-pl runs: no folder {root}")
        return 2
    rows = run_rows(root)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no runs under {root}")
        return 0
    columns = ("config", "version", "state", "steps", "best_score", "commit", "date")
    shown = [[("-" if r[c] is None else f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c])) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in shown)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in shown:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    return 0
