"""A run killed with SIGKILL mid-epoch resumes with --ckpt_path last to the same final metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
TINY = str(TESTS / "configs" / "tiny.yaml")


def fit(root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--trainer.max_steps", "8", "--trainer.val_check_interval", "8",
               "--trainer.num_sanity_val_steps", "0", "--data.augmentations", "{p: 1.0, pad_to: 64}",
               "--data.train.init_args.length", "40",
               "--trainer.callbacks+", json.dumps({"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                                   "init_args": {"every_n_train_steps": 2, "save_last": True,
                                                                 "filename": "every-{step}"}}),
               "--trainer.logger.init_args.save_dir", str(root), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def final(root: Path) -> dict:
    return json.loads(next(root.rglob("metrics.json")).read_text())["final"]


@pytest.mark.timeout(900)
def test_sigkill_mid_epoch_then_resume_from_last_gives_the_unbroken_result(tmp_path):
    unbroken = fit(tmp_path / "unbroken")
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    killed = fit(tmp_path / "killed", "--trainer.callbacks+",
                 json.dumps({"class_path": "helpers.kill.KillAtStep", "init_args": {"step": 5}}))
    assert killed.returncode == -signal.SIGKILL
    assert not list((tmp_path / "killed").rglob("metrics.json")) or "final" not in final(tmp_path / "killed") \
        or final(tmp_path / "killed") is None
    resumed = fit(tmp_path / "killed", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and "version_0" in resumed.stdout
    assert len(list((tmp_path / "killed").glob("demo/version_*"))) == 1  # the same run folder
    a, b = final(tmp_path / "unbroken"), final(tmp_path / "killed")
    assert b["step"] == a["step"] == 8
    for key in ("f1", "f1_forged", "iou"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
