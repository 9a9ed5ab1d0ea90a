"""Sweeps and ablations for real: each run a focal-pl process of its own, the tables read back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from focal_pl.cli import main
from helpers.paths import TINY, TINY_DATA


@pytest.mark.slow
def test_sweep_runs_locally_offline_and_tabulates_each_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = main(["sweep", "temperature", "--count", "2", "--out", str(out), "--config", TINY])
    assert code == 0
    rows = json.loads((out / "sweep_results.json").read_text())
    assert [r["values"]["model.init_args.loss.init_args.temperature"] for r in rows] == [0.05, 0.1]
    assert [r["version"] for r in rows] == ["run000_temperature=0.05", "run001_temperature=0.1"]
    for row in rows:
        folder = out / row["version"]  # one layout: each run's own folder holds everything
        record = json.loads((folder / "metrics.json").read_text())
        assert Path(record["run_dir"]) == folder.resolve() == Path(row["run_dir"])
        assert row["best"]["f1"] == record["best"]["f1"] and 0.0 <= row["best"]["f1"] <= 1.0
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["model"]["init_args"]["loss"]["init_args"]["temperature"] == row["values"][
            "model.init_args.loss.init_args.temperature"]
        assert list(folder.glob("wandb/offline-run-*")), "the W&B logger wrote no offline run in the run folder"
        assert (folder / "run.log").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
    table = (out / "sweep_results.md").read_text()
    assert table.count("| run00") == 2 and "0.05" in table and "Arguments added to every run" in table


def small_test_sets(root: Path) -> tuple[str, str]:
    """Two configs made in code: a forged + authentic set (as the CASIA v1 sample) and a set of
    pristine photos (as Table VIII's), each a data.test list."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("casia/images", "casia/masks", "photos"):
        (root / folder).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "casia/images" / f"im{i}.png")
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "photos" / f"p{i}.png")
        if i < 2:
            mask = np.zeros((48, 64), np.uint8)
            mask[8:30, 10:40] = 255
            Image.fromarray(mask).save(root / "casia/masks" / f"im{i}.png")
    forged = root / "forged.yaml"
    forged.write_text(yaml.safe_dump({"data": {"test": [{"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {
        "images": str(root / "casia"), "include_authentic": True}}]}}))
    pristine = root / "pristine.yaml"
    pristine.write_text(yaml.safe_dump({"data": {"test": [{"class_path": "focal_pl.data.sources.PristineFolder", "init_args": {
        "root": str(root / "photos"), "count": 3, "name": "photos"}}]}}))
    return str(forged), str(pristine)


@pytest.mark.slow
def test_ablate_trains_each_variant_tests_it_then_clusters_one_checkpoint_each_way(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    forged, pristine = small_test_sets(tmp_path / "sets")
    out = tmp_path / "losses"
    code = main(["ablate", "losses", "--only", "nce", "scl_soft_image", "--out", str(out), "--config", TINY,
                        "--test", forged])
    assert code == 0
    rows = {r["label"]: r for r in json.loads((out / "ablation_results.json").read_text())}
    assert set(rows) == {"nce", "scl_soft_image"}
    assert Path(rows["nce"]["run_dir"]) == (out / "nce").resolve()  # runs/ablations/<set>/<variant>
    nce = yaml.safe_load((Path(rows["nce"]["run_dir"]) / "config.yaml").read_text())
    assert nce["model"]["init_args"]["loss"]["class_path"] == "focal_pl.losses.NCELoss"
    # each variant's best checkpoint was tested, beside its row of the paper's Table VI
    tested = rows["scl_soft_image"]["test"]["results"]
    assert tested["paper"] == {"table": "table_6_losses", "row": "SCL, soft weights, image by image"}
    grid = next(e for e in tested["results"] if e["resolution"] == "grid")
    assert grid["set"] == "folder" and grid["forged_images"] == 2 and grid["authentic_images"] == 2
    table = (out / "ablation_results.md").read_text()
    assert "| folder F1 | mean F1 |" in table
    assert f"| nce | NCE (original, [40]) | {rows['nce']['extractor']['parameters']:,} | " \
           f"{rows['nce']['best']['f1']:.3f} |" in table  # the extractor's size, its validation
    line = next(line for line in table.splitlines() if line.startswith("| scl_soft_image |"))
    assert f"| {grid['f1']:.3f} | {grid['f1']:.3f} |" in line  # the one set's F1, and so the mean
    assert "| 0.860 |" in line  # the paper's mean for that row, beside ours
    held = rows["scl_soft_image"]["table"]  # and the JSON holds what the row shows
    assert held["paper_mean_f1"] == 0.86 and held["difference"] == pytest.approx(grid["f1"] - 0.86)

    assert main(["ablate", "clustering"]) == 2
    assert "--ckpt_path" in capsys.readouterr().err
    out = tmp_path / "clustering"
    code = main(["ablate", "clustering", "--only", "hdbscan", "kmeans", "--out", str(out), "--config", TINY,
                        "--ckpt_path", rows["scl_soft_image"]["run_dir"], "--test", forged, pristine])
    assert code == 0
    rows = {r["label"]: r for r in json.loads((out / "ablation_results.json").read_text())}
    photos = {k: next(e for e in r["test"]["results"]["results"] if e["set"] == "photos" and e["resolution"] == "image")
              for k, r in rows.items()}
    assert photos["kmeans"]["false_alarm_rate"] == 1.0  # two clusters, always: an alarm on every photo
    assert photos["hdbscan"]["authentic_images"] == 3
    table = (out / "ablation_results.md").read_text()
    assert "photos false alarms (rate / area)" in table and "| kmeans | K-means |" in table
    assert "nan" not in table


@pytest.mark.slow
def test_backbone_set_runs_on_cpu_with_tiny_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "backbones"
    code = main(["ablate", "backbones_cpu", "--only", "traditional", "mit", "--out", str(out), "--no-test",
                        "--config", TINY_DATA, "--trainer.max_steps", "2"])
    assert code == 0
    rows = {r["label"]: r for r in json.loads((out / "ablation_results.json").read_text())}
    for label, row in rows.items():
        assert row["returncode"] == 0 and 0.0 <= row["final"]["f1"] <= 1.0, label
    assert rows["traditional"]["final"]["step"] == 2


def test_a_failing_run_is_reported_as_failed_not_with_stale_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    old = out / "run000_temperature=0.05"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"best": {"f1": 0.99}, "final": {"f1": 0.99}}))  # an old run's
    # a value that parses (the preflight refuses what does not, before any run) but fails in the run
    code = main(["sweep", "temperature", "--count", "1", "--out", str(out), "--model.init_args.loss.init_args.max_iter",
                 "0"])
    assert code == 1
    row = json.loads((out / "sweep_results.json").read_text())[0]
    assert row["version"] == "run000_temperature=0.05-2"  # a new folder, the old run's left alone
    assert row["returncode"] != 0 and row["best"] is None
    assert "failed" in (out / "sweep_results.md").read_text()
    assert "max_iter must be >= 1, got 0" in (out / row["version"] / "run.log").read_text()
    # the table says why in the run's own one line, not only "see run.log"
    assert row["status"].startswith("failed (2): model.init_args.loss: max_iter") and "got 0" in row["status"]


@pytest.mark.slow
def test_a_run_that_never_validated_is_failed_not_nan_ok(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = main(["sweep", "temperature", "--count", "1", "--out", str(out), "--config", TINY, "--trainer.max_steps", "1",
                       "--trainer.val_check_interval", "3", "--trainer.num_sanity_val_steps", "0",
                       "--budget.final_validation", "false"])
    assert code == 1
    row = json.loads((out / "sweep_results.json").read_text())[0]
    assert row["returncode"] == 0 and row["status"] == "failed: no validation ran (no score)"


@pytest.mark.slow
def test_a_short_fit_is_validated_at_its_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = main(["sweep", "temperature", "--count", "1", "--out", str(out), "--config", TINY, "--trainer.max_steps", "1",
                       "--trainer.val_check_interval", "3", "--trainer.num_sanity_val_steps", "0"])
    assert code == 0
    row = json.loads((out / "sweep_results.json").read_text())[0]
    assert row["status"] == "ok" and row["final"]["step"] == 1


def test_sweep_export_names_this_python_so_the_agent_runs_from_any_shell(tmp_path):

    target = tmp_path / "exported.yaml"
    assert main(["sweep", "temperature", "--export", str(target)]) == 0
    command = yaml.safe_load(target.read_text())["command"]
    assert command[:4] == ["${env}", sys.executable, "-m", "focal_pl"] and "${args}" in command
