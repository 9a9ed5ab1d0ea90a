"""``focal-pl env`` (the code, package versions and machine a run here would record) and
``focal-pl runs`` (every run under a folder, one line each, from the files it wrote)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def add_arguments(parser: Any, name: str) -> None:
    """``runs [FOLDER] [--json]`` or ``env [--json]``."""
    if name == "runs":
        parser.add_argument("root", nargs="?", default="runs", help="folder of the runs (default: runs)")
    from jsonargparse import ActionYesNo

    parser.add_argument("--json", action=ActionYesNo, default=False, help="as JSON")


def run(args: Any, name: str) -> int:
    return runs_main(args) if name == "runs" else env_main(args)


def env_main(args: Any) -> int:
    """Print the environment part of ``run.json``: code version, package versions, hardware."""
    from focal_pl.training.provenance import code_line, environment

    info = environment()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(code_line())
    versions = info["versions"]
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v and k not in ("cuda", "cudnn")))
    hw = info["hardware"]
    gpus = "; ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in hw["gpus"]) or "none"
    # torch's CUDA version is the one it was built for, which a machine without a GPU has too
    build = f"torch built for CUDA {versions['cuda']}" if versions.get("cuda") else "torch built for the CPU only"
    if hw["gpus"] and versions.get("cudnn"):
        build += f", cuDNN {versions['cudnn']}"
    print(f"machine: {hw['cpu']}, {hw['cpu_cores']} cores (BLAS: {hw['blas']}); GPUs: {gpus} ({build}); "
          f"{hw['platform']}; host {hw['host']}")
    return 0


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_rows(root: Path) -> list[dict[str, Any]]:
    """One row per fit run folder under ``root`` (a folder holding ``run.json`` or checkpoints)."""
    from focal_pl.cli.runfolders import lock_holder
    from focal_pl.training.checkpoints import stored_step

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
        steps = run.get("step", (metrics.get("final") or {}).get("step"))
        last = folder / "checkpoints" / "last.ckpt"
        saved = stored_step(last) if last.is_file() else None
        if holder:
            state = f"running ({holder.split(' (')[0]})"
        elif state == "running":  # its process ended without a word: what it left is last.ckpt
            state = "ended without a word (killed?); " + (f"last.ckpt at step {saved}" if saved is not None
                                                          else "no last.ckpt")
        if saved is not None and (steps is None or saved > steps):
            steps = saved
        best = (metrics.get("best") or {}).get("score")
        git = (run.get("code") or {}).get("git") or {}
        commit = (git.get("commit", "")[:10] + ("+" if git.get("dirty") else "")) if git else \
            (run.get("code") or {}).get("package", "-")
        rows.append({"config": folder.parent.name, "version": folder.name, "state": state,
                     "steps": steps, "best_score": best, "commit": commit or "-",
                     "date": (run.get("started") or "-")[:16].replace("T", " "), "folder": str(folder)})
    return rows


def runs_main(args: Any) -> int:
    """List the runs under a folder (default: runs/) as one table."""
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
    print("best_score: the best validation's score = (macro F1 + IoU) / 2, the official code's rule for the "
          "best checkpoint")
    return 0
