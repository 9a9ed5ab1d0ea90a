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
    # Ctrl-C as a terminal sends it: a shell's background job (make test &) starts with SIGINT
    # ignored, which Python and its children would inherit; the run under test must receive it
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def final(root: Path) -> dict:
    return json.loads(next(root.rglob("metrics.json")).read_text())["final"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_mid_epoch_then_resume_from_last_gives_the_unbroken_result(tmp_path):
    unbroken = fit(tmp_path / "unbroken")
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    killed = fit(tmp_path / "killed", "--trainer.callbacks+",
                 json.dumps({"class_path": "helpers.kill.KillAtStep", "init_args": {"step": 5}}))
    assert killed.returncode == -signal.SIGKILL
    # killed before its first validation: no score recorded yet
    assert all(json.loads(r.read_text())["final"] is None for r in (tmp_path / "killed").rglob("metrics.json"))
    resumed = fit(tmp_path / "killed", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and "from step 4" in resumed.stdout and "version_0" in resumed.stdout
    assert len(list((tmp_path / "killed").glob("demo/version_*"))) == 1  # the same run folder
    a, b = final(tmp_path / "unbroken"), final(tmp_path / "killed")
    assert b["step"] == a["step"] == 8
    for key in ("f1", "f1_forged", "iou"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_stopped_fit_leaves_a_checkpoint_to_resume_and_a_truthful_summary(name, tmp_path):
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM mid-fit: last.ckpt at the step reached, a line that
    says so, no summary naming files that were never written; then it resumes to the end."""
    stopped = fit(tmp_path, "--trainer.callbacks+",
                  json.dumps({"class_path": "helpers.kill.KillAtStep", "init_args": {"step": 3, "signal": name}}))
    assert stopped.returncode != 0  # a scheduler must not read a stopped run as finished
    last = next(tmp_path.rglob("last.ckpt"))
    import re

    import torch

    step = int(re.search(r"fit stopped at step (\d+)", stopped.stdout).group(1))
    assert step in (3, 4)  # SIGTERM lets the batch under way finish
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == step
    assert "--ckpt_path last" in stopped.stdout
    assert "metrics:" not in stopped.stdout and "pictures:" not in stopped.stdout
    resumed = fit(tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from step {step}" in resumed.stdout and final(tmp_path)["step"] == 8
