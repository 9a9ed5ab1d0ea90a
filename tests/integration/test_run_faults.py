"""A run's files are the run, whatever a cluster does to it: runs started together get folders of
their own, a run is resumed by one process at a time, a kill or a full disk during a save leaves
the previous checkpoint whole, and damaged or foreign checkpoint files are named in one line."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.disks import small_disk
from helpers.paths import ENV, TINY


def command(root: Path, *extra: str, verb: str = "fit") -> list[str]:
    return [sys.executable, "-m", "focal_pl", verb, "--config", "demo.yaml", "--config", TINY,
            "--trainer.num_sanity_val_steps", "0", "--trainer.logger.init_args.save_dir", str(root), *extra]


def run(root: Path, *extra: str, verb: str = "fit") -> subprocess.CompletedProcess:
    return subprocess.run(command(root, *extra, verb=verb), capture_output=True, text=True, timeout=600, env=ENV)


def errors(out: subprocess.CompletedProcess) -> list[str]:
    """What the command said went wrong: its focal-pl lines on stderr (Lightning's banners aside)."""
    return [line for line in out.stderr.splitlines() if line.startswith("focal-pl")]


def step_of(path: Path) -> int:
    from focal_pl.files.checkpoint import read_checkpoint

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
    $TMPDIR is): last.ckpt is the step-4 file, whole and verified, and nothing half-written is left
    (the file being written had no name yet); the run resumes to the end."""
    stages = ["--trainer.max_steps", "8", "--trainer.val_check_interval", "4"]
    env_tmp = tmp_path / "elsewhere"
    env_tmp.mkdir()
    killed = subprocess.run(command(tmp_path, *stages, "--trainer.callbacks+", json.dumps(
        {"class_path": "helpers.faults.BreakWrite", "init_args": {"name": "last.ckpt", "nth": 2, "mode": "kill"}})),
        capture_output=True, text=True, timeout=600, env={**ENV, "TMPDIR": str(env_tmp)})
    assert killed.returncode == -9
    checkpoints = next(tmp_path.glob("demo/version_*/checkpoints"))
    assert step_of(checkpoints / "last.ckpt") == 4
    assert not list(checkpoints.glob(".*")) and {p.name for p in checkpoints.iterdir()} == {"last.ckpt", "best-step=4.ckpt"}
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


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_lost_ddp_peer_ends_the_other_in_bounded_time_with_one_line(how, tmp_path):
    """Rank 1 killed, or frozen, at step 6 of a 2-process CPU run (last.ckpt at step 4): rank 0
    ends within the watch's timeout (10 s here) with one line naming rank 1 and last.ckpt."""
    started = time.monotonic()
    out = subprocess.run(command(tmp_path, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                                 "--trainer.max_steps", "12", "--trainer.val_check_interval", "4",
                                 "--trainer.callbacks+", json.dumps({"class_path": "helpers.kill.KillAtStep",
                                                                     "init_args": {"step": 6, "rank": 1, "signal": how}}),
                                 "--trainer.callbacks+", json.dumps({"class_path": "focal_pl.training.distributed.PeerWatch",
                                                                     "init_args": {"timeout": 10}})),
                         capture_output=True, text=True, timeout=300, env=ENV)
    took = time.monotonic() - started
    assert out.returncode == 1, out.stderr[-3000:]
    [line] = [line for line in errors(out) if "lost a DDP peer" in line]
    assert re.search(r"rank 1 \(pid \d+ on \S+, at step \d+\) (is gone|has not been heard from for 1\d s)", line), line
    assert re.search(r"last.ckpt holds step 4 \(\S+/checkpoints/last.ckpt\)", line), line
    assert "Traceback" not in out.stderr and "frame #" not in out.stderr
    assert took < 60  # a frozen peer: the 10 s watch, not the process group's 30 minutes
    assert step_of(next(tmp_path.glob("demo/version_*/checkpoints/last.ckpt"))) == 4
    if how == "SIGSTOP":  # the frozen rank this process launched is ended too, not left behind
        assert "silent for" in out.stderr
        pid = int(re.search(r"rank 1 \(pid (\d+)", line).group(1))
        time.sleep(0.5)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


