"""What the sweep and ablation runners share: each run is ``focal-pl`` in a subprocess writing to
``<out>/<label>/`` (the CLI's one run layout: config, checkpoints, metrics.json, run.log), and its
record is read back from the files it wrote; tables are written after every run, so an interrupted
set keeps its table."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from focal_pl.cli.errors import UsageError
from focal_pl.cli.preflight import problems
from focal_pl.cli.shipped import find_shipped


def resolve_file(value: str, shipped: Path) -> Path:
    """A path as given, else the shipped file of that name."""
    path = Path(value)
    if path.is_file():
        return path
    found = find_shipped(value, shipped, by_name=True)
    if found:
        return found
    raise UsageError(f"no such file {value!r} (nor among the shipped ones in {shipped})")


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
        f"failed ({code}){said_why(folder / 'run.log')}, see {version}/run.log" if code
        else "failed: no validation ran (no score)")
    return {"label": label, "version": version, "returncode": code, "status": status,
            "seconds": time.perf_counter() - started, "final": record.get("final"), "best": record.get("best"),
            "run_dir": record.get("run_dir") or str(folder), "command": full}


def said_why(log: Path) -> str:
    """``: <reason>`` from a run's log when it ended with focal-pl's one-line error, else empty."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
    if lines and lines[-1].startswith("focal-pl ") and ": " in lines[-1]:
        return ": " + lines[-1].split(": ", 1)[1].replace("|", "/")[:160]
    return ""


def write_results(out: Path, stem: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """``<stem>.md`` (the table) and ``<stem>.json`` (every run's record and command) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1, default=str))


def added_to_every_run(extra: list[str]) -> str:
    """The table's line on the command-line arguments every run got on top of its own."""
    return "Arguments added to every run: " + (f"`{shlex.join(extra)}`" if extra else "none") + "."


def resolved(argv: list[str]) -> dict[str, Any]:
    """The config ``focal-pl ARGV`` resolves to (its ``--print_config``, parsed in this process: no
    model is built, no folder made); ``ValueError`` with the command's own line when it does not
    parse."""
    import yaml

    from focal_pl.cli.lightning import run_command

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_command([*argv, "--print_config"])
        except SystemExit as stop:
            code = stop.code or 0
    if code:
        said = [line for line in err.getvalue().splitlines() if line.strip()]
        raise ValueError(said[-1] if said else f"focal-pl {argv[0]} exited {code}")
    return yaml.safe_load(out.getvalue()) or {}


def check_commands(commands: list[list[str]]) -> list[str]:
    """The problems of every command (``focal-pl`` argument lists) an ablation or sweep will run,
    each said once: what does not parse, and every missing file or folder."""
    lines: list[str] = []
    for argv in commands:
        try:
            lines += problems(resolved(argv))
        except ValueError as error:
            lines.append(str(error).split(": ", 1)[-1] if str(error).startswith("focal-pl ") else str(error))
    return list(dict.fromkeys(lines))
