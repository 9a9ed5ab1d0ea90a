"""What a run was: run.json in every run folder and in every checkpoint, its end state whatever
ended it, `focal-pl env`, `focal-pl runs`, and the code version in the head of results tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.paths import ENV, TESTS, TINY


def focal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "focal_pl", *args], capture_output=True, text=True, timeout=600,
                          env=ENV)


def fit(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return focal("fit", "--config", "demo.yaml", "--config", TINY, "--trainer.num_sanity_val_steps", "0",
                 "--trainer.logger.init_args.save_dir", str(root), *extra)


def git_head() -> str | None:
    done = subprocess.run(["git", "-C", str(TESTS.parent), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    out = fit(root, "--trainer.max_steps", "4", "--trainer.val_check_interval", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    return next(root.glob("demo/version_*"))


def test_run_json_says_what_the_run_was(finished):
    import lightning
    import sklearn
    import timm

    run = json.loads((finished / "run.json").read_text())
    assert run["state"] == "finished" and run["step"] == 4 and run["stage"] == "fit"
    assert run["command"][:2] == ["focal-pl", "fit"] and TINY in run["command"]
    assert run["seed"] == "0" and run["ended"] >= run["started"] and run["wall_seconds"] > 0
    if git_head():  # run from this checkout: its commit, and whether the tree differed from it
        assert run["code"]["git"]["commit"] == git_head() and isinstance(run["code"]["git"]["dirty"], bool)
    versions = run["versions"]
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["lightning"] == lightning.__version__ and versions["timm"] == timm.__version__
    assert versions["scikit-learn"] == sklearn.__version__ and versions["python"] == sys.version.split()[0]
    assert {"cuda", "cudnn", "numpy", "albumentations", "litdata", "torchmetrics"} <= set(versions)
    hardware = run["hardware"]
    assert hardware["cpu_cores"] == os.cpu_count() and hardware["world_size"] == 1 and hardware["nodes"] == 1
    assert " kernels" in hardware["blas"]  # the BLAS the CPU clustering runs on
    assert hardware["gpus"] == [] or torch.cuda.is_available()
    train = run["data"]["train"][0]
    assert train == {"reader": "SyntheticForgeries", "name": "synthetic-1", "root": None, "items": 16, "seed": 1}
    # every checkpoint carries the same record
    checkpoint = torch.load(finished / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    carried = checkpoint["focal_pl"]["provenance"]
    assert carried["code"] == run["code"] and carried["data"] == run["data"] and carried["step"] == 4


def test_shards_are_fingerprinted_by_their_manifest(tmp_path):
    from helpers.images import pairs_folder

    from focal_pl.data import ForgeryDataModule, StreamingShards, write_shards
    from focal_pl.data.sources import FolderPairs
    from focal_pl.training.provenance import data_fingerprint

    import hashlib

    write_shards([FolderPairs(str(pairs_folder(tmp_path / "set", 5)))], tmp_path / "shards", progress=False)
    module = ForgeryDataModule(train=StreamingShards([str(tmp_path / "shards")]), val_split=1, image_size=32)
    found = data_fingerprint(module)
    shard = found["train"][0]["shards"][0]
    assert shard["manifest_sha256"] == hashlib.sha256((tmp_path / "shards" / "manifest.json").read_bytes()).hexdigest()
    assert shard["items"] == 5 and found["train"][0]["items"] == 5 and found["val"][0]["items"] == 1


@pytest.mark.slow
def test_stopped_and_failed_runs_say_so_and_runs_lists_them(finished, tmp_path):
    root = finished.parent.parent
    stopped = fit(root, "--trainer.max_steps", "40", "--trainer.val_check_interval", "20", "--run.version", "stopped",
                  "--trainer.callbacks+", json.dumps({"class_path": "helpers.kill.KillAtStep",
                                                      "init_args": {"step": 3, "signal": "SIGTERM"}}))
    assert stopped.returncode == 143
    assert json.loads((root / "demo" / "stopped" / "run.json").read_text())["state"] == \
        "interrupted at step 4 by SIGTERM"
    failed = fit(root, "--trainer.max_steps", "40", "--run.version", "failed", "--trainer.callbacks+",
                 json.dumps({"class_path": "helpers.faults.RaiseAtStep", "init_args": {"step": 2}}))
    assert failed.returncode == 1
    assert json.loads((root / "demo" / "failed" / "run.json").read_text())["state"] == \
        "failed at step 2: RuntimeError: a bug in a callback"
    killed = fit(root, "--trainer.max_steps", "40", "--run.version", "killed", "--trainer.callbacks+",
                 json.dumps({"class_path": "helpers.kill.KillAtStep", "init_args": {"step": 2}}))
    assert killed.returncode == -signal.SIGKILL
    listed = focal("runs", str(root))
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[1]: line for line in listed.stdout.splitlines()[1:]}
    assert "finished" in lines[finished.name] and " 4 " in lines[finished.name]
    assert "interrupted at step 4 by SIGTERM" in lines["stopped"] and "failed at step 2" in lines["failed"]
    # killed: run.json could not say so; the listing reads what it left, last.ckpt
    assert "ended without a word (killed?); last.ckpt at step 2" in lines["killed"] and " 2 " in lines["killed"]
    resumed = fit(root, "--trainer.max_steps", "4", "--run.version", "killed", "--ckpt_path",
                  str(root / "demo" / "killed"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = json.loads((root / "demo" / "killed" / "run.json").read_text())
    first, second = run["segments"]  # every segment of the run, the killed one closed on resume
    assert first["state"] == "ended without a word (killed?); its last checkpoint holds step 2" and first["step"] == 2
    assert second["state"] == "finished" and second["from_step"] == 2 and second["step"] == 4
    assert run["state"] == "finished" and run["step"] == 4 and run["started"] == first["started"]
    assert run["wall_seconds"] == round(sum(s["wall_seconds"] or 0 for s in run["segments"]), 1)
    if git_head():
        assert git_head()[:10] in lines[finished.name]
    rows = json.loads(focal("runs", str(root), "--json").stdout)
    assert {r["version"] for r in rows} == {finished.name, "stopped", "failed", "killed"}
    best = json.loads((finished / "metrics.json").read_text())["best"]["score"]
    assert next(r for r in rows if r["version"] == finished.name)["best_score"] == pytest.approx(best)


def test_results_tables_name_the_code_they_came_from():
    from focal_pl.training.provenance import versions_line
    from focal_pl.training.provenance import machine_line

    line = machine_line()
    assert versions_line() in line and "focal-pl " in line and "torch " in line
