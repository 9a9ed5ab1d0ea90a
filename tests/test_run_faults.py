"""A run's files are the run, whatever a cluster does to it: runs started together get folders of
their own, a run is resumed by one process at a time, a kill or a full disk during a save leaves
the previous checkpoint whole, and damaged or foreign checkpoint files are named in one line."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

TESTS = Path(__file__).parent
TINY = str(TESTS / "configs" / "tiny.yaml")
ENV = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}


def command(root: Path, *extra: str, verb: str = "fit") -> list[str]:
    return [sys.executable, "-m", "focal_pl", verb, "--config", "demo.yaml", "--config", TINY,
            "--trainer.num_sanity_val_steps", "0", "--trainer.logger.init_args.save_dir", str(root), *extra]


def run(root: Path, *extra: str, verb: str = "fit") -> subprocess.CompletedProcess:
    return subprocess.run(command(root, *extra, verb=verb), capture_output=True, text=True, timeout=600, env=ENV)


def errors(out: subprocess.CompletedProcess) -> list[str]:
    """What the command said went wrong: its focal-pl lines on stderr (Lightning's banners aside)."""
    return [line for line in out.stderr.splitlines() if line.startswith("focal-pl")]


def step_of(path: Path) -> int:
    from focal_pl.checkpoint_io import read_checkpoint

    return read_checkpoint(path)["global_step"]  # and its sha256 checked


@pytest.mark.slow
def test_fits_started_together_never_share_a_folder(tmp_path):
    configs = []
    for lr, folder in ((0.002, "a"), (0.003, "b")):  # same file name: same run name and version slug
        (tmp_path / folder).mkdir()
        config = tmp_path / folder / "lr.yaml"
        config.write_text(f"model:\n  init_args:\n    optimizer:\n      init_args:\n        lr: {lr}\n")
        configs.append(str(config))
    starts = [command(tmp_path, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2")] * 2
    starts += [command(tmp_path, "--config", c, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2")
               for c in configs]
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
                 for c in starts]
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stderr.read()[-2000:]
    folders = sorted(p.parent for p in tmp_path.glob("demo/*/config.yaml"))
    assert len(folders) == 4 and len({int(re.match(r"version_(\d+)", f.name).group(1)) for f in folders}) == 4
    for folder in folders:  # each folder holds one run: its config, its curves, its checkpoints
        with (folder / "metrics.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        lrs = [float(r["lr-Adam"]) for r in rows if r["lr-Adam"]]
        assert lrs[0] == yaml.safe_load((folder / "config.yaml").read_text())["model"]["init_args"]["optimizer"][
            "init_args"]["lr"]
        assert [r["step"] for r in rows if r["train/loss"]] == ["0", "1"]  # two steps, logged once
        assert {p.name for p in (folder / "checkpoints").iterdir()} == {"best-step=2.ckpt", "last.ckpt"}


@pytest.mark.slow
def test_a_run_is_resumed_by_one_process_at_a_time(tmp_path):
    first = run(tmp_path, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    folder = next(tmp_path.glob("demo/version_*"))
    longer = ("--ckpt_path", "last", "--trainer.max_steps", "400", "--trainer.val_check_interval", "2")
    slow = subprocess.Popen(command(tmp_path, *longer), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    try:
        deadline = time.monotonic() + 120
        while f"process {slow.pid} " not in (folder / ".lock").read_text() and time.monotonic() < deadline:
            assert slow.poll() is None, slow.stderr.read()[-2000:]
            time.sleep(0.2)
        second = run(tmp_path, *longer)
        assert second.returncode == 2
        assert len(errors(second)) == 1 and f"is in use by process {slow.pid} on " in errors(second)[0]
        assert "focal-pl fit" in errors(second)[0] and str(folder.resolve()) in errors(second)[0]
    finally:
        slow.kill()
        slow.wait()
    # the lock went with the process (SIGKILL included): the run resumes again
    reached = step_of(folder / "checkpoints" / "last.ckpt")
    again = run(tmp_path, "--ckpt_path", "last", "--trainer.max_steps", str(reached + 2), "--trainer.val_check_interval",
                "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"from step {reached}" in again.stdout and step_of(folder / "checkpoints" / "last.ckpt") == reached + 2


@pytest.mark.slow
def test_a_kill_during_a_save_leaves_the_previous_checkpoint_whole(tmp_path):
    """SIGKILL halfway through writing last.ckpt at step 8 (in the run's own folder, whatever
    $TMPDIR is): last.ckpt is the step-4 file, whole and verified; the run resumes to the end."""
    stages = ["--trainer.max_steps", "8", "--trainer.val_check_interval", "4"]
    env_tmp = tmp_path / "elsewhere"
    env_tmp.mkdir()
    killed = subprocess.run(command(tmp_path, *stages, "--trainer.callbacks+", json.dumps(
        {"class_path": "helpers.faults.BreakWrite", "init_args": {"name": "last.ckpt", "nth": 2, "mode": "kill"}})),
        capture_output=True, text=True, timeout=600, env={**ENV, "TMPDIR": str(env_tmp)})
    assert killed.returncode == -9
    checkpoints = next(tmp_path.glob("demo/version_*/checkpoints"))
    assert step_of(checkpoints / "last.ckpt") == 4
    assert list(checkpoints.glob(".last.ckpt.*.tmp"))  # the half-written file is a temporary, not last.ckpt
    resumed = run(tmp_path, *stages, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert step_of(checkpoints / "last.ckpt") == 8
    assert not list(checkpoints.glob(".*.tmp"))  # the dead writer's temporary is cleared


@pytest.mark.slow
def test_a_write_error_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    out = run(tmp_path, "--trainer.max_steps", "8", "--trainer.val_check_interval", "4", "--trainer.callbacks+",
              json.dumps({"class_path": "helpers.faults.BreakWrite",
                          "init_args": {"name": "last.ckpt", "nth": 2, "mode": "enospc"}}))
    assert out.returncode == 1
    checkpoints = next(tmp_path.glob("demo/version_*/checkpoints"))
    [line] = errors(out)
    assert re.fullmatch(rf"focal-pl fit: could not write {re.escape(str(checkpoints / 'last.ckpt'))}: No space left on "
                        rf"device; [\d.]+ \w+ free on {re.escape(str(checkpoints))} \(the previous file is kept\); "
                        r"stopped at step 8; last.ckpt holds step 4 .*", line), line
    assert "Traceback" not in out.stderr
    assert step_of(checkpoints / "last.ckpt") == 4 and not list(checkpoints.glob(".*.tmp"))


@contextlib.contextmanager
def small_disk(path: Path, size: str = "3m", options: str = ""):
    """A tmpfs of ``size`` at ``path`` (needs root and mount; the test is skipped without them)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(path)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root?); the write-error injection test covers it")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file_and_the_free_space(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        out = run(disk, "--trainer.max_steps", "8", "--trainer.val_check_interval", "4", "--trainer.callbacks+",
                  json.dumps({"class_path": "helpers.faults.FillDisk", "init_args": {"step": 5}}))
        assert out.returncode == 1, out.stderr[-2000:]
        [line] = errors(out)
        assert re.match(rf"focal-pl fit: could not write {re.escape(str(disk))}/demo/\S+: No space left on device; "
                        r"0 B free on ", line), line
        assert "last.ckpt holds step 4" in line and "Traceback" not in out.stderr
        last = next(disk.glob("demo/version_*/checkpoints/last.ckpt"))
        assert step_of(last) == 4


def test_a_read_only_run_root_is_one_line_before_anything_runs(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only filesystem instead
        context = small_disk(root, "1m", ",ro")
    else:
        root.chmod(0o555)
        context = contextlib.nullcontext(root)
    with context:
        out = run(root / "runs", "--trainer.max_steps", "2")
        assert out.returncode == 2
        assert errors(out) == [line for line in out.stderr.splitlines() if line.strip()]  # nothing else said
        assert re.fullmatch(rf"focal-pl fit: run folder: cannot create (a folder in )?{re.escape(str(root))}/runs\S*: "
                            r"(Read-only file system|Permission denied)", errors(out)[0]), errors(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    out = run(root, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    return next(root.glob("demo/version_*/checkpoints/last.ckpt"))


def damage_a_weight(source: Path, target: Path) -> None:
    """Copy a checkpoint with 64 bytes inside its first weight tensor overwritten (the zip stays valid)."""
    data = bytearray(source.read_bytes())
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    first = next(iter(checkpoint["state_dict"].values()))
    raw = first.reshape(-1).view(torch.uint8).numpy().tobytes()
    at = bytes(data).find(raw[:256])
    assert at > 0
    data[at:at + 64] = bytes(255 - b for b in data[at:at + 64])
    target.write_bytes(bytes(data))
    with zipfile.ZipFile(target) as archive:  # still a readable archive: only the check can tell
        assert archive.namelist()


@pytest.mark.parametrize("kind, expected", [
    ("damaged", r"its weights or optimizer state do not match the sha256 stored when it was written"),
    ("empty", r"is empty \(0 bytes\)"),
    ("truncated", r"truncated or not a torch file"),
    ("text", r"truncated or not a torch file|cannot be read as a checkpoint"),
    ("weights", r"not a Lightning checkpoint \(no state_dict"),
    ("folder", r"a folder without checkpoints/last.ckpt"),
])
def test_an_unusable_checkpoint_is_one_line_naming_it_before_any_folder(kind, expected, trained, tmp_path):
    bad = tmp_path / "bad.ckpt"
    if kind == "damaged":
        damage_a_weight(trained, bad)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    elif kind == "text":
        bad.write_text("not a checkpoint\n")
    elif kind == "weights":
        torch.save({"extractor.head.weight": torch.zeros(2)}, bad)
    else:
        bad.mkdir()
    runs = tmp_path / "runs"
    for verb in ("validate", "test", "fit"):
        out = run(runs, "--ckpt_path", str(bad), verb=verb)
        said = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(said) == 1, (verb, out.stderr[-2000:])
        assert said[0].startswith(f"focal-pl {verb}: ckpt_path: {bad}") and re.search(expected, said[0]), said
        assert not runs.exists() or not [p for p in runs.rglob("*") if p.is_dir() and p.name != "demo"]


def test_a_damaged_checkpoint_is_refused_when_loaded_from_python_too(trained, tmp_path):
    from focal_pl.checkpoint_io import CheckpointError, read_checkpoint
    from focal_pl.module import FocalModule

    bad = tmp_path / "bad.ckpt"
    damage_a_weight(trained, bad)
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        read_checkpoint(bad)
    assert FocalModule.load_from_checkpoint(trained, weights_only=True).trained_steps == 2
    with pytest.raises(CheckpointError, match="bad.ckpt.*do not match the sha256"):
        FocalModule.load_from_checkpoint(bad, weights_only=True)
