"""`focal-pl test` with a trained run's checkpoint checks the test sets against what that run trained on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.images import pairs_folder
from helpers.paths import TINY


@pytest.mark.slow
def test_test_with_a_checkpoint_checks_what_its_run_trained_on(tmp_path):
    train = pairs_folder(tmp_path / "train", 8)
    source = json.dumps([{"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {"images": str(train)}}])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "focal_pl"]
    common = ["--config", "demo.yaml", "--config", TINY, "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]
    fit = subprocess.run(base + ["fit", *common, "--data.train", source, "--data.val", source,
                                 "--trainer.max_steps", "2", "--trainer.num_sanity_val_steps", "0"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert fit.returncode == 0, fit.stderr[-2000:]
    run = next((tmp_path / "runs").glob("demo/version_*"))
    # the test command's own config trains on synthetic images: only the run's config knows the folder
    tested = subprocess.run(base + ["test", *common, "--ckpt_path", str(run), "--data.test", source],
                            capture_output=True, text=True, env=env, timeout=600)
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert f"test image {train / 'im0.png'} is also in the training data: {train / 'im0.png'} (same path (train))" \
        in tested.stderr
    assert "8 test image(s) overlap the training or validation data" in tested.stderr  # 8 images, each twice
