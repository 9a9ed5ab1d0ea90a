"""The W&B preset logs offline without a login: the resolved config, losses, metrics, the learning
rate and validation pictures, in a local run folder that `wandb sync` can upload later."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers.paths import TINY


@pytest.mark.slow
def test_wandb_preset_runs_offline_without_a_login_and_logs_everything(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--config", "logger/wandb.yaml", "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
               "--trainer.logger.init_args.online", "true"]  # asked for online, but nobody is logged in
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no login was found" in out.stderr
    runs = list((tmp_path / "runs").glob("demo/*/wandb/offline-run-*"))  # inside the run folder
    assert len(runs) == 1
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"SoftContrastiveLoss", b"seed_everything",  # the resolved config
                b"train/loss", b"val/f1", b"val/iou", b"lr-Adam", b"val/examples"):
        assert key in record, key
    assert len(list((runs[0] / "files" / "media" / "images").rglob("*.png"))) == 6  # 3 pictures x 2
    folder = runs[0].parent.parent  # checkpoints, metrics.json, pictures and W&B's files together
    assert (folder / "metrics.json").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
    assert folder.parent.name == "demo" and folder.name.startswith("version_0")
    untrained = b"val/score"  # the untrained validation reaches W&B as step 0
    assert untrained in record


def test_runs_started_by_a_wandb_agent_log_online_and_others_stay_offline(tmp_path, monkeypatch):
    from focal_pl.training.loggers import WandbPreset

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    assert WandbPreset(save_dir=str(tmp_path)).online is False
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")
    preset = WandbPreset(save_dir=str(tmp_path))
    assert preset.online is True and preset._offline is False
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc either: no login, so offline after all
    assert WandbPreset(save_dir=str(tmp_path)).online is False
