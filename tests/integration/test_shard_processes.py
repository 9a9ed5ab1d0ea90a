"""Shards under a cluster's conditions: a conversion stopped by Ctrl-C and resumed, and the stream
on two DDP processes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from focal_pl.data.shards import JOURNAL, inspect_shards
from helpers.paths import TINY


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_a_rerun_resumes(tmp_path):
    spec = tmp_path / "sources.yaml"
    spec.write_text("- class_path: focal_pl.data.synthetic.SyntheticForgeries\n"
                    "  init_args: {length: 500, size: 160, seed: 5}\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "focal_pl", "data", "shard", str(spec), "--out", str(out),
               "--chunk-bytes", "40KB", "--workers", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True,  # SIGINT as from a terminal, even if pytest ignores it:
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    journal = out / JOURNAL
    while process.poll() is None and time.time() < deadline and (
            not journal.exists() or len(journal.read_text().splitlines()) < 2):
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the whole process group
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and "sharding" not in line]
    assert len(lines) == 1 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "interrupted after" in lines[0] and "run the same command again to resume" in lines[0]
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "(resumed after" in resumed.stdout
    assert "wrote 500 items" in resumed.stdout
    assert inspect_shards(out)["problems"] == []


@pytest.mark.slow
def test_ddp_streaming_gives_equal_batches_on_two_ranks(shards, tmp_path):
    root, _, _ = shards
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    train = json.dumps({"class_path": "focal_pl.data.StreamingShards",
                        "init_args": {"paths": [str(root / "out")]}})
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_steps", "-1",
               "--trainer.max_epochs", "1", "--trainer.val_check_interval", "null",
               "--data.batch_size", "2", "--data.train", train,
               "--trainer.logger.init_args.save_dir", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = (next(tmp_path.rglob("metrics.csv"))).read_text()
    rows = list(csv.DictReader(io.StringIO(metrics)))
    steps = {int(row["step"]) for row in rows if row.get("train/loss")}
    # 11 items over 2 ranks with batch 2: padded to 12, 3 full batches on each rank
    assert max(steps) + 1 == 3, metrics


def test_a_synth_killed_midway_leaves_nothing_under_its_name_and_the_rerun_writes_it_whole(tmp_path):
    out = tmp_path / "casia2"
    command = [sys.executable, "-m", "focal_pl", "data", "synth", "casia2", str(out), "--items", "400"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline and not list(tmp_path.glob(".casia2.*.tmp/Tp/*")):
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()  # killed while writing, not after
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not out.exists() and len(list(tmp_path.glob(".casia2.*.tmp"))) == 1  # the killed run's half set
    done = subprocess.run([*command[:-1], "20"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["casia2"]  # the half set removed, the new one whole
    assert json.loads((out / "SYNTHETIC.json").read_text())["items"] == 20
    assert len(list((out / "Tp").iterdir())) == 20
