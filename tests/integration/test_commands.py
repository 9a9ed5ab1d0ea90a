"""The focal-pl command as a process: help without Lightning, the cached command help, DDP on two
CPU processes, the lines a log file gets, and a refused config as a user sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from focal_pl.extractors import HRNet
from helpers.paths import ENV, TINY, focal_pl, said, tiny_args


def test_top_level_help_answers_without_importing_torch():
    code = "import sys; from focal_pl.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout and "predict" in out.stdout and "ablate" in out.stdout
    assert out.stdout.strip().endswith("False")


def test_command_help_is_built_once_then_served_without_lightning(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = ("import sys; from focal_pl.cli import main; main(['validate', '--help']); "
            "print('LIGHTNING' if 'lightning' in sys.modules else 'LIGHT')")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "--ckpt_path" in first.stdout and first.stdout.strip().endswith("LIGHTNING")
    assert second.stdout.strip().endswith("LIGHT")
    assert second.stdout.rsplit("\n", 2)[0] == first.stdout.rsplit("\n", 2)[0]
    assert len(list((tmp_path / "focal-pl").glob("help-validate-*.txt"))) == 1


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_by_config_alone(tmp_path):
    """The launched rank reruns the command line as given and takes the launching rank's run folder
    (no folder of its own, no environment variable)."""
    out = focal_pl(*tiny_args("fit", tmp_path, "--trainer.strategy", "ddp", "--trainer.devices", "2"),
                   env={**ENV, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in out.stderr + out.stdout
    assert [p.name for p in tmp_path.glob("demo/*")] == ["version_0_tiny_strategy=ddp_devices=2"]  # one folder, no stray one
    record = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    # each rank clusters 3 of the 6 validation images; the synced means count all 6
    assert record["untrained"]["images"] == 6 and record["final"]["images"] == 6


def test_a_log_file_gets_a_line_every_few_steps_not_a_redrawn_bar(tmp_path):
    out = focal_pl(*tiny_args("fit", tmp_path, "--trainer.max_steps", "6", "--trainer.log_every_n_steps", "2",
                              "--trainer.enable_progress_bar", "null"))
    assert out.returncode == 0, out.stderr[-2000:]
    steps = [line for line in out.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["2/6", "4/6", "6/6"]
    assert "\r" not in out.stdout + out.stderr and "Tip:" not in out.stdout + out.stderr
    assert "LeafSpec" not in out.stderr


def test_a_refused_config_is_one_line_and_leaves_nothing(tmp_path):
    out = focal_pl(*tiny_args("fit", tmp_path / "runs", "--data.batch_size", "0"))
    assert out.returncode == 2 and said(out.stderr) == [
        "focal-pl fit: data.batch_size: batch_size must be >= 1, got 0"], out.stderr[-2000:]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_hrnet_batch_norms_are_synced_under_ddp_on_gpus_only_and_lightnings_flag_on_cpu_is_named(tmp_path):
    from types import SimpleNamespace

    from focal_pl.module import FocalModule

    def configured(world_size: int, device: str) -> FocalModule:
        module = FocalModule(HRNet(variant="w18_small"))
        strategy = SimpleNamespace(root_device=torch.device(device))
        module._trainer = SimpleNamespace(strategy=strategy, world_size=world_size)
        module.configure_model()
        return module

    def synced(module: FocalModule) -> int:
        return sum(isinstance(m, nn.SyncBatchNorm) for m in module.extractor.modules())

    assert synced(configured(2, "cuda")) > 50  # DDP on GPUs: HRNet's batch norms share statistics
    assert synced(configured(2, "cpu")) == 0 and synced(configured(1, "cuda")) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--model.init_args.extractor=focal_pl.extractors.HRNet",
               "--model.init_args.extractor.init_args.variant=w18_small",
               "--trainer.strategy", "ddp", "--trainer.devices", "1", "--trainer.sync_batchnorm", "true",
               "--trainer.logger.init_args.save_dir", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode != 0
    assert "trainer.sync_batchnorm: needs GPUs" in out.stderr and "sync_batchnorm false" in out.stderr
