"""What a run was: the code, the packages, the machine, the command, the data and how it ended.

Every run folder gets ``run.json`` (written when the command starts, rewritten when it ends, and
copied into each checkpoint), so that a number can always be traced to the code and data behind it:
the git commit (and whether the tree had uncommitted changes, with a hash of them) when run from a
checkout, else the package version; the versions of Python and the libraries that change results;
the CPU / GPUs, world size and nodes; the seed; the full command line; start, end and wall time; the
end state (finished, interrupted at step N by a signal, failed with the error's line); and a
fingerprint of each data source (reader, root, item count; for shards the manifest's sha256).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from focal_pl import __version__
from focal_pl.files.atomic import write_atomic

RUN_FILE = "run.json"
PACKAGES = ("torch", "lightning", "timm", "torchmetrics", "scikit-learn", "albumentations", "litdata", "numpy",
            "jsonargparse", "segmentation-models-pytorch", "hdbscan")
CHECKOUT = Path(__file__).resolve().parents[2]  # the checkout holding focal_pl/, when run from one


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


@functools.cache
def code_version() -> dict[str, Any]:
    """``{"package": version, "git": {"commit", "dirty", "diff_sha256"} | None}`` (git only when the
    package runs from a checkout of its repository)."""
    git = None
    if (CHECKOUT / ".git").exists() and (CHECKOUT / "focal_pl").is_dir():
        commit = (_git("rev-parse", "HEAD") or "").strip()
        if commit:
            diff = _git("diff", "HEAD", "--", "focal_pl") or ""
            git = {"commit": commit, "dirty": bool(diff),
                   "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None}
    return {"package": __version__, "git": git}


def code_line() -> str:
    """``focal-pl 0.1.0, git 1a2b3c4 (+ uncommitted changes 9f8e7d6a)`` or ``focal-pl 0.1.0 (installed)``."""
    code = code_version()
    git = code["git"]
    if git is None:
        return f"focal-pl {code['package']} (installed)"
    dirty = f" + uncommitted changes {git['diff_sha256'][:8]}" if git["dirty"] else ""
    return f"focal-pl {code['package']}, git {git['commit'][:10]}{dirty}"


@functools.cache
def versions() -> dict[str, str | None]:
    """Python, CUDA, cuDNN and the packages that change results (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import torch

    out["cuda"] = torch.version.cuda
    out["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(trainer: L.Trainer | None = None) -> dict[str, Any]:
    """CPU model and cores, GPUs (name, memory), host; world size and nodes when a trainer is given."""
    import torch

    gpus = [{"name": torch.cuda.get_device_name(i),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    out = {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(),
           "cpu_cores": os.cpu_count(), "blas": blas(), "gpus": gpus}
    if trainer is not None:
        out.update(world_size=trainer.world_size, nodes=trainer.num_nodes,
                   accelerator=type(trainer.accelerator).__name__, precision=str(trainer.precision))
    return out


def blas() -> str:
    """The BLAS that scipy runs on (the exact HDBSCAN's bounds product on the CPU): its version, kernels and
    any ``OPENBLAS_CORETYPE`` override, since CPU clustering speed follows them."""
    from scipy.linalg import blas as _  # noqa: F401 - loaded, so that threadpoolctl sees it
    from threadpoolctl import threadpool_info

    libraries = threadpool_info()
    info = next((i for i in libraries if "scipy.libs" in i.get("filepath", "")), None) or next(
        (i for i in libraries if i.get("user_api") == "blas"), {})
    override = os.environ.get("OPENBLAS_CORETYPE")
    return (f"{info.get('internal_api', 'BLAS')} {info.get('version', '?')}, {info.get('architecture', '?')} kernels"
            + (f" (OPENBLAS_CORETYPE={override} in the environment)" if override else ""))


def machine() -> dict[str, Any]:
    """What a measurement ran on, written next to every figure: OS, CPU, cores, versions, GPU, date."""
    import multiprocessing

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(), "processor": cpu_model(),
        "cpu_count": multiprocessing.cpu_count(), "threads": torch.get_num_threads(),
        "python": sys.version.split()[0], "torch": torch.__version__, "gpu": gpu, "blas": blas(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "code": versions_line(),
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One readable line of ``machine()`` for the head of a results table: the machine, then the
    commit and the main versions."""
    info = info or machine()
    where = info["gpu"] or f"{info['processor']}, {info['cpu_count']} cores ({info['threads']} threads)"
    code = f" Code: {info['code']}." if info.get("code") else ""
    return f"Machine: {where}, {info['platform']}, torch {info['torch']}, {info['date']}.{code}"


def environment() -> dict[str, Any]:
    """The code, the versions and the machine (``focal-pl env``)."""
    return {"code": code_version(), "versions": versions(), "hardware": hardware()}


def versions_line() -> str:
    """The code line and the main versions, for the head of every results table."""
    v = versions()
    shown = ", ".join(f"{k} {v[k]}" for k in ("torch", "lightning", "timm", "scikit-learn") if v.get(k))
    return f"{code_line()}; {shown}"


def fingerprint(source: Any) -> dict[str, Any]:
    """What a data source is: its reader, root, item count (and, for shards, the manifest's sha256)."""
    inner = getattr(source, "source", source)  # a held-out view: its source's reader and root
    entry: dict[str, Any] = {"reader": type(inner).__name__, "name": getattr(source, "name", None)}
    where = getattr(inner, "where", None)
    entry["root"] = where() if callable(where) else getattr(inner, "path", None)
    try:
        entry["items"] = len(source)
    except Exception as error:  # noqa: BLE001 - a fingerprint never stops a run
        entry["items"] = f"unknown ({type(error).__name__})"
    paths = getattr(source, "paths", None) or ([source.path] if hasattr(source, "folder") else [])
    if paths:
        entry["shards"] = [shard_fingerprint(Path(p)) for p in paths]
        if not isinstance(entry["items"], int):
            entry["items"] = sum(s.get("items") or 0 for s in entry["shards"])
    if getattr(source, "seed", None) is not None:
        entry["seed"] = source.seed
    return entry


def shard_fingerprint(folder: Path) -> dict[str, Any]:
    """A shard folder: its path, items written and the sha256 of its manifest (which holds every
    chunk's sha256)."""
    manifest = folder / "manifest.json"
    try:
        items = json.loads(manifest.read_text()).get("items_written")
    except (OSError, ValueError):
        items = None
    return {"path": str(folder), "items": items, "manifest_sha256": _sha256(manifest)}


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def data_fingerprint(datamodule: Any) -> dict[str, list[dict[str, Any]]]:
    """Per split, the fingerprint of each source of a ``ForgeryDataModule``."""
    sources = getattr(datamodule, "sources", None) or {}
    out = {split: [fingerprint(s) for s in items] for split, items in sources.items() if items}
    if getattr(datamodule, "stream", None) is not None:
        out["train"] = [fingerprint(datamodule.stream)]
    return out


def command_line() -> list[str]:
    """This process's command line, as typed (``focal-pl fit ...`` for the console script or -m)."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith(("focal-pl", "__main__.py"))):
        argv[0] = "focal-pl"
    return argv


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def end_state(exception: BaseException | None, step: int) -> str:
    """``finished``, ``interrupted at step N by SIGTERM``, or ``failed at step N: Error: first line``."""
    if exception is None:
        return "finished"
    signum = getattr(exception, "signum", None)
    if signum is not None:
        import signal

        return f"interrupted at step {step} by {signal.Signals(signum).name}"
    if isinstance(exception, KeyboardInterrupt):
        return f"interrupted at step {step} by Ctrl-C"
    first = (str(exception).strip().splitlines() or [""])[0][:300]
    return f"failed at step {step}: {type(exception).__name__}: {first}"


class Provenance(Callback):
    """Writes ``run.json`` into the run folder when a command starts and when it ends (finished,
    stopped or failed), and puts the same record into every checkpoint (``checkpoint['focal_pl']
    ['provenance']``). A resumed fit keeps every segment of the run (``segments``: each start, end,
    wall time, steps and end state); a segment that ended without a word (SIGKILL, a lost node)
    is closed when the run is resumed, with the step of the checkpoint it is resumed from.

    Args:
        command: the command line to record (the CLI gives its own); None: this process's.
    """

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command
        self.record: dict[str, Any] = {}
        self.path: Path | None = None
        self._started = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from focal_pl.training.runs import run_dir

        folder = run_dir(trainer)  # collective under DDP
        self._started = time.time()
        self.path = folder / RUN_FILE
        stage = str(getattr(stage, "value", stage))
        command = ["focal-pl", *self.command] if self.command is not None else command_line()
        segment = {"command": command, "started": now(), "ended": None, "wall_seconds": None, "state": "running",
                   "from_step": 0, "step": 0, "checkpoint": None}
        # a fit in a folder that has a run.json already is a resumed run: its segments come first
        before = self._segments_on_disk() if stage == "fit" and trainer.is_global_zero else []
        self.record = {
            "command": command, "cwd": os.getcwd(), "stage": stage,
            "started": before[0].get("started") if before else segment["started"], "ended": None,
            "wall_seconds": None, "state": "running", "step": 0,
            "seed": os.environ.get("PL_GLOBAL_SEED"), "code": code_version(), "versions": versions(),
            "hardware": hardware(trainer), "data": data_fingerprint(trainer.datamodule),
            "checkpoint": None, "image_size": getattr(trainer.datamodule, "image_size", None),
            "segments": [*before, segment],
        }
        self._write(trainer)

    def _segments_on_disk(self) -> list[dict[str, Any]]:
        """The segments of the run.json in the run folder (a run written before segments existed:
        its one record as a segment)."""
        if self.path is None or not self.path.is_file():
            return []
        try:
            earlier = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return earlier.get("segments") or [{k: earlier.get(k) for k in ("command", "started", "ended",
                                                                       "wall_seconds", "state", "step")}]

    def _started_at(self, trainer: L.Trainer) -> None:
        """Once the checkpoint is restored: the step this segment starts at, the checkpoint it
        resumes, and the earlier segment closed when its process ended without writing it (its
        end is the step of the checkpoint resumed from, the last whole state it left)."""
        if not self.record:
            return
        step = trainer.global_step
        checkpoint = str(trainer.ckpt_path) if trainer.ckpt_path else None
        segments = self.record["segments"]
        segments[-1].update(from_step=step, step=step, checkpoint=checkpoint)
        for earlier in segments[:-1]:
            if earlier.get("state") == "running":
                earlier.update(state=f"ended without a word (killed?); its last checkpoint holds step {step}",
                               step=step)
        self.record.update(step=step, checkpoint=checkpoint)
        self._write(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started_at(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" and not self.record["segments"][-1].get("checkpoint"):
            self._started_at(trainer)  # validate / test: the checkpoint scored

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started_at(trainer)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started_at(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(self.record, indent=1, default=str))

    def end(self, trainer: L.Trainer, exception: BaseException | str | None) -> None:
        """Write the end of this segment: ``finished``, interrupted, or failed with the error's line
        (a text: the state itself, e.g. a lost DDP peer's line from the peer watch)."""
        if not self.record or self.record.get("ended"):
            return
        step = trainer.global_step
        state = exception if isinstance(exception, str) else end_state(exception, step)
        segment = self.record["segments"][-1]
        segment.update(ended=now(), wall_seconds=round(time.time() - self._started, 1), step=step, state=state)
        total = sum(s.get("wall_seconds") or 0 for s in self.record["segments"])
        self.record.update(ended=segment["ended"], wall_seconds=round(total, 1), step=step, state=state)
        try:
            self._write(trainer)
        except OSError:  # a full disk: the error that says so is the one to show
            pass

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        meta = dict(checkpoint.get("focal_pl") or {})
        earlier = sum(s.get("wall_seconds") or 0 for s in self.record.get("segments", [])[:-1])
        meta["provenance"] = {**self.record, "state": f"running (checkpoint at step {trainer.global_step})",
                              "step": trainer.global_step,
                              "wall_seconds": round(earlier + time.time() - self._started, 1)}
        checkpoint["focal_pl"] = meta

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.end(trainer, None)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.end(trainer, exception)
