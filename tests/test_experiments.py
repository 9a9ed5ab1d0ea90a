"""Sweep files and ablation sets: every key they set resolves in the CLI, and both runners run."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml

from focal_pl.cli import configs_dir, main
from focal_pl.cli.ablate import ablate_main, variants_of
from focal_pl.cli.sweep import command_for, expand, sample, sweep_main
from focal_pl.shipped import sweeps_dir

CONFIGS = Path(__file__).parent / "configs"
TINY = str(CONFIGS / "tiny.yaml")
TINY_DATA = str(CONFIGS / "tiny_data.yaml")
SWEEP_FILES = sorted(sweeps_dir().glob("*.yaml"))
ABLATION_SETS = sorted((configs_dir() / "ablation").glob("*.yaml"))


def resolved(argv: list[str], capsys) -> dict:
    """The config the CLI resolves for ``argv`` (``--print_config``)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--print_config"])
    assert stop.value.code in (0, None), capsys.readouterr().err[-2000:]
    return yaml.safe_load(capsys.readouterr().out)


def at(config: dict, dotted: str):
    """The value of a dotted key (``model.init_args.loss.init_args.temperature``)."""
    node = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part not in node and "init_args" in node:
            node = node["init_args"]  # jsonargparse's shorthand: clusterer.grid = clusterer.init_args.grid
        assert isinstance(node, dict) and part in node, f"{dotted}: no {part!r} in {node}"
        node = node[part]
    return node


def same(found, wanted) -> bool:
    """Whether a resolved config value is what a sweep / variant asked for."""
    if isinstance(wanted, str) and isinstance(found, dict) and "class_path" in found:
        return found["class_path"] == wanted  # a class given by its path alone
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(k in found and same(found[k], v) for k, v in wanted.items())
    if isinstance(wanted, float):
        return isinstance(found, (int, float)) and math.isclose(found, wanted, rel_tol=1e-9)
    return found == wanted


def test_the_sweep_and_ablation_files_are_shipped():
    assert {p.stem for p in SWEEP_FILES} >= {"temperature", "fuzziness", "temperature_fuzziness"}
    assert {p.stem for p in ABLATION_SETS} >= {"losses", "backbones", "clustering"}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_sweep_key_resolves_in_the_cli(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"] == "val/score" and "${args}" in sweep["command"]
    assert sweep["command"][:4] == ["${env}", "${interpreter}", "-m", "focal_pl"]  # no bare focal-pl on PATH
    values = expand(sweep, count=1, seed=3)[0]
    command = command_for(sweep, values)
    assert command[:3][-2:] == ["focal_pl", "fit"] or command[1:4] == ["-m", "focal_pl", "fit"]
    config = resolved(command[3:], capsys)
    for key, value in values.items():
        assert same(at(config, key), value), f"{path.name}: {key} resolved to {at(config, key)}, not {value}"


def test_grid_sweeps_expand_to_every_combination_and_random_ones_draw_inside_the_bounds():
    grid = yaml.safe_load((sweeps_dir() / "temperature_fuzziness.yaml").read_text())
    runs = expand(grid)
    sizes = [len(spec["values"]) for spec in grid["parameters"].values()]
    assert len(runs) == math.prod(sizes) and len({tuple(r.values()) for r in runs}) == len(runs)
    spec = yaml.safe_load((sweeps_dir() / "random_temperature_fuzziness.yaml").read_text())
    draws = expand(spec, count=50, seed=1)
    temperature = spec["parameters"]["model.init_args.loss.init_args.temperature"]
    assert len(draws) == 50
    assert all(temperature["min"] <= d["model.init_args.loss.init_args.temperature"] <= temperature["max"]
               for d in draws)
    log_t = [math.log(d["model.init_args.loss.init_args.temperature"]) for d in draws]
    assert min(log_t) < math.log(0.1) < max(log_t)  # spread over the decades, not clumped
    assert sample({"distribution": "int_uniform", "min": 2, "max": 2}, random.Random(0)) == 2
    with pytest.raises(ValueError, match="values"):
        expand({"method": "grid", "parameters": {"a": {"min": 0, "max": 1}}})


def test_sweep_runs_locally_offline_and_tabulates_each_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = sweep_main(["temperature", "--count", "2", "--out", str(out), "--config", TINY])
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


@pytest.mark.parametrize("path", ABLATION_SETS, ids=lambda p: p.stem)
def test_every_ablation_variant_resolves_to_what_it_names(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = yaml.safe_load(path.read_text())
    assert spec["command"] in ("fit", "validate", "test") and spec["variants"]
    for label, variant in variants_of(spec).items():
        overrides = variant["set"]
        argv = [spec["command"], *[a for c in spec["base"] for a in ("--config", c)]]
        argv += [f"--{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in overrides.items()]
        config = resolved(argv, capsys)
        for key, value in overrides.items():
            assert same(at(config, key), value), f"{path.name} {label}: {key} = {at(config, key)}"


def test_table_v_runs_what_the_paper_ran(capsys, tmp_path, monkeypatch):
    """The traditional row is a classifier on HRNet-W32 (the paper's), the ViT classifier an extra;
    every FOCAL row is a whole network whose parameters the tables list."""
    monkeypatch.chdir(tmp_path)
    spec = yaml.safe_load((configs_dir() / "ablation" / "backbones.yaml").read_text())
    variants = variants_of(spec)
    from focal_pl.evaluation import paper

    assert [v["row"] for v in variants.values() if not v["extra"]] == [
        r for r in paper.rows("table_5_backbones") if not r.startswith("FOCAL Fusion")]
    argv = ["fit", "--config", "vit.yaml", *[f"--{k}={json.dumps(v) if isinstance(v, dict) else v}"
                                              for k, v in variants["traditional"]["set"].items()]]
    model = resolved(argv, capsys)["model"]
    assert model["class_path"] == "focal_pl.baseline.PixelClassifier"
    assert model["init_args"]["loss"]["class_path"] == "focal_pl.losses.PixelBCELoss"
    assert model["init_args"]["extractor"]["class_path"] == "focal_pl.extractors.HRNet"
    assert model["init_args"]["extractor"]["init_args"]["variant"] == "w32"
    extra = resolved(["fit", "--config", "vit.yaml", *[f"--{k}={v}" for k, v in variants["traditional_vit"]["set"].items()]],
                     capsys)["model"]
    assert extra["init_args"]["extractor"]["init_args"]["size"] == "large" and variants["traditional_vit"]["extra"]


def test_table_vi_has_the_papers_rows_then_named_extras(capsys):
    from focal_pl.evaluation import paper

    spec = yaml.safe_load((configs_dir() / "ablation" / "losses.yaml").read_text())
    variants = variants_of(spec)
    assert [v["row"] for v in variants.values() if not v["extra"]] == paper.rows("table_6_losses")
    loss = lambda label: variants[label]["set"]["model.init_args.loss"]  # noqa: E731
    assert loss("nce")["class_path"] == "focal_pl.losses.NCELoss"  # the original NCE, one positive
    assert loss("nce_official")["class_path"] == "focal_pl.losses.InfoNCELoss" and variants["nce_official"]["extra"]
    assert loss("scl_fcm_image")["init_args"]["coefficients"] == "fcm" and loss("scl_fcm_image")["init_args"]["max_iter"] > 1
    assert loss("scl_soft_batch")["init_args"]["scope"] == "batch" and loss("scl_soft_image")["init_args"]["scope"] == "image"
    out = main(["ablate", "losses", "--dry-run"])
    printed = capsys.readouterr().out
    assert out == 0 and "[4/10] nce (NCE (original, [40])) -> runs/ablations/losses/nce" in printed
    assert "(extra)" not in printed and "nce_official (NCE as the official code computes it (all positives, averaged), extra)" in printed
    assert "then: " in printed and "--data.test <1 set(s)>" in printed


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
def test_ablate_trains_each_variant_tests_it_then_clusters_one_checkpoint_each_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    forged, pristine = small_test_sets(tmp_path / "sets")
    out = tmp_path / "losses"
    code = ablate_main(["losses", "--only", "nce", "scl_soft_image", "--out", str(out), "--config", TINY,
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

    with pytest.raises(SystemExit, match="--ckpt_path"):
        ablate_main(["clustering"])
    out = tmp_path / "clustering"
    code = ablate_main(["clustering", "--only", "hdbscan", "kmeans", "--out", str(out), "--config", TINY,
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
    code = ablate_main(["backbones_cpu", "--only", "traditional", "mit", "--out", str(out), "--no-test",
                        "--config", TINY_DATA, "--trainer.max_steps", "2"])
    assert code == 0
    rows = {r["label"]: r for r in json.loads((out / "ablation_results.json").read_text())}
    for label, row in rows.items():
        assert row["returncode"] == 0 and 0.0 <= row["final"]["f1"] <= 1.0, label
    assert rows["traditional"]["final"]["step"] == 2


def test_unknown_variant_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="scl_typo"):
        ablate_main(["losses", "--only", "scl_typo"])


def test_a_failing_run_is_reported_as_failed_not_with_stale_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    old = out / "run000_temperature=0.05"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"best": {"f1": 0.99}, "final": {"f1": 0.99}}))  # an old run's
    code = sweep_main(["temperature", "--count", "1", "--out", str(out), "--trainer.max_steps", "many"])
    assert code == 1
    row = json.loads((out / "sweep_results.json").read_text())[0]
    assert row["version"] == "run000_temperature=0.05-2"  # a new folder, the old run's left alone
    assert row["returncode"] != 0 and row["best"] is None
    assert "failed" in (out / "sweep_results.md").read_text()
    assert "many" in (out / row["version"] / "run.log").read_text()
    # the table says why in the run's own one line, not only "see run.log"
    assert row["status"].startswith("failed (2): trainer.max_steps") and "many" in row["status"]


def test_a_run_that_never_validated_is_failed_not_nan_ok(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = sweep_main(["temperature", "--count", "1", "--out", str(out), "--config", TINY, "--trainer.max_steps", "1",
                       "--trainer.val_check_interval", "3", "--trainer.num_sanity_val_steps", "0",
                       "--budget.final_validation", "false"])
    assert code == 1
    row = json.loads((out / "sweep_results.json").read_text())[0]
    assert row["returncode"] == 0 and row["status"] == "failed: no validation ran (no score)"


def test_a_short_fit_is_validated_at_its_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    code = sweep_main(["temperature", "--count", "1", "--out", str(out), "--config", TINY, "--trainer.max_steps", "1",
                       "--trainer.val_check_interval", "3", "--trainer.num_sanity_val_steps", "0"])
    assert code == 0
    row = json.loads((out / "sweep_results.json").read_text())[0]
    assert row["status"] == "ok" and row["final"]["step"] == 1


def test_sweep_export_names_this_python_so_the_agent_runs_from_any_shell(tmp_path):
    import sys

    target = tmp_path / "exported.yaml"
    assert sweep_main(["temperature", "--export", str(target)]) == 0
    command = yaml.safe_load(target.read_text())["command"]
    assert command[:4] == ["${env}", sys.executable, "-m", "focal_pl"] and "${args}" in command
