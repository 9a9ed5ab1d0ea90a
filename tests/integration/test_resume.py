"""A stopped or killed fit resumed with --ckpt_path last is the unbroken run: the same losses at the
same steps, validations at the same steps with the same scores, every metrics row once, the same
checkpoints; and stopping exits with 130 (Ctrl-C) or 143 (SIGTERM), saying where last.ckpt is."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.paths import TESTS, TINY


def fit(root: Path, *extra: str) -> subprocess.CompletedProcess:
    """12 steps of 4 images, validated every 4 steps, in a session of its own (so that a signal to
    its process group reaches it and its loader workers only)."""
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--trainer.max_steps", "12", "--trainer.val_check_interval", "4",
               "--trainer.num_sanity_val_steps", "0", "--data.augmentations", "{p: 1.0, pad_to: 64}",
               "--data.train.init_args.length", "40", "--trainer.logger.init_args.save_dir", str(root), *extra]
    # Ctrl-C as a terminal sends it: a shell's background job (make test &) starts with SIGINT
    # ignored, which Python and its children would inherit; the run under test must receive it
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, start_new_session=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop(**how) -> list[str]:
    return ["--trainer.callbacks+", json.dumps({"class_path": "helpers.kill.KillAtStep", "init_args": how})]


def rows(root: Path) -> list[dict[str, str]]:
    with next(root.rglob("metrics.csv")).open(newline="") as handle:
        return list(csv.DictReader(handle))


def record(root: Path) -> dict:
    entries = json.loads(next(root.rglob("metrics.json")).read_text())
    drop = lambda e: {k: v for k, v in e.items() if k != "cluster_seconds"} if e else e  # noqa: E731
    return {"history": [drop(e) for e in entries["history"]], "best": drop(entries["best"]),
            "final": drop(entries["final"])}


def checkpoints(root: Path) -> dict[str, int]:
    return {p.name: torch.load(p, map_location="cpu", weights_only=True)["global_step"] for p in root.rglob("*.ckpt")}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unbroken")
    done = fit(root)
    assert done.returncode == 0, done.stderr[-2000:]
    return root


CASES = {
    "ctrl-c mid-epoch": (dict(step=5, signal="SIGINT"), [], 130, 6),
    "sigterm at a validation step": (dict(step=3, signal="SIGTERM"), [], 143, 4),
    "sigterm to the process group, loader workers included": (
        dict(step=5, signal="SIGTERM", group=True), ["--data.num_workers", "2"], 143, 6),
    "ctrl-c to the process group, loader workers included": (
        dict(step=9, signal="SIGINT", group=True), ["--data.num_workers", "2"], 130, 10),
    "sigterm during a validation": (dict(step=5, signal="SIGTERM", during="validation"), [], 143, 8),
    "sigkill": (dict(step=6), [], -signal.SIGKILL, None),
    "ctrl-c twice: at once, last.ckpt untouched": (dict(step=5, signal="SIGINT", times=2), [], 130, None),
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", list(CASES))
def test_a_stopped_fit_resumes_to_the_unbroken_run(case, unbroken, tmp_path):
    how, extra, code, stopped_at = CASES[case]
    stopped = fit(tmp_path, *extra, *stop(**how))
    assert stopped.returncode == code, stopped.stderr[-2000:]
    last = next(tmp_path.rglob("last.ckpt"))
    if stopped_at is not None:  # a graceful stop: at a step boundary, saved there, said in one line
        assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == stopped_at
        said = [line for line in stopped.stderr.splitlines() if line.startswith("focal-pl fit: stopped")]
        assert said == [f"focal-pl fit: stopped by {how['signal']} at step {stopped_at}; last.ckpt saved at step "
                        f"{stopped_at}: {last.resolve()}. Resume: the same command with --ckpt_path last"]
        assert "Traceback" not in stopped.stderr
    else:  # killed, or stopped at once: last.ckpt is the whole state of the last validation
        assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4
    resumed = fit(tmp_path, *extra, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(list(tmp_path.glob("demo/version_*"))) == 1  # the same run folder
    assert rows(tmp_path) == rows(unbroken)  # every loss, learning rate and score, at its step, once
    assert record(tmp_path) == record(unbroken)  # validations at the same steps, same scores, same best
    assert checkpoints(tmp_path) == checkpoints(unbroken) == {"best-step=8.ckpt": 8, "last.ckpt": 12}


@pytest.mark.slow
def test_ctrl_c_during_the_untrained_validation_stops_it_at_once(tmp_path):
    stopped = fit(tmp_path, "--trainer.num_sanity_val_steps", "-1", *stop(step=0, signal="SIGINT", during="sanity"))
    assert stopped.returncode == 130
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing trained, nothing saved
    assert "focal-pl fit: stopped by SIGINT at step 0 (nothing to save yet)" in stopped.stderr
    assert "Traceback" not in stopped.stderr



LEAKED_LOADER = """
import sys, time, torch
from torch.utils.data import DataLoader
from focal_pl.data.sampling import ignore_stop_signals
loader = DataLoader(list(range(64)), batch_size=2, num_workers=2, worker_init_fn=ignore_stop_signals)
iterator = iter(loader)
next(iterator)
kept = [iterator]  # never shut down: multiprocessing ends the workers at exit (SIGTERM, then join)
print(*(w.pid for w in iterator._workers), flush=True)
"""


def test_loader_workers_leave_the_jobs_group_and_end_when_their_parent_ends_them():
    """Signals to the job's process group miss the workers; a parent's SIGTERM still ends them, so a
    process that exits with a loader still open ends at once (ignoring it hung multiprocessing's
    exit, which terminates daemon workers and then waits for them)."""
    out = subprocess.run([sys.executable, "-c", LEAKED_LOADER], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def _worker(ready) -> None:
    import time

    from focal_pl.data.sampling import ignore_stop_signals

    ignore_stop_signals()
    ready.set()
    time.sleep(60)


def test_a_loader_worker_is_out_of_the_jobs_process_group_and_ends_on_its_parents_sigterm():
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_worker, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(30)
    assert os.getpgid(worker.pid) == worker.pid != os.getpgid(0), "the worker is still in the job's process group"
    subprocess.run(["kill", "-INT", str(worker.pid)], check=True)
    worker.join(1.0)
    assert worker.is_alive(), f"a SIGINT ended the worker ({worker.exitcode})"
    worker.terminate()  # from the parent
    worker.join(10)
    assert not worker.is_alive(), "the parent's SIGTERM did not end the worker"
    assert worker.exitcode == -signal.SIGTERM
