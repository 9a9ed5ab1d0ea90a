"""The focal-pl command end to end: configs, fit / validate / test / predict, bf16, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from focal_pl.cli import main, resolve_config, resolve_config_args, run_lightning, shipped_configs

TINY = str(Path(__file__).parent / "configs" / "tiny.yaml")


def run(*args: str, root: Path):
    """One in-process LightningCLI run of demo.yaml + tiny.yaml writing under ``root``."""
    argv = [args[0], "--config", "demo.yaml", "--config", TINY,
            "--trainer.logger.init_args.save_dir", str(root), *args[1:]]
    return run_lightning(argv)


def test_top_level_help_answers_without_importing_torch():
    code = "import sys; from focal_pl.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout and "predict" in out.stdout
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


def test_bare_config_names_resolve_to_the_shipped_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert {"demo.yaml", "vit.yaml", "hrnet.yaml"} <= set(shipped_configs())
    shipped = resolve_config("vit.yaml")
    assert Path(shipped).is_file() and Path(shipped).parent.name == "configs"
    assert resolve_config("vit") == shipped
    (tmp_path / "vit.yaml").write_text("trainer: {}\n")
    assert resolve_config("vit.yaml") == "vit.yaml"  # a local file of that name wins
    assert resolve_config("nothing.yaml") == "nothing.yaml"
    assert resolve_config_args(["fit", "-c", "demo", "--config=hrnet.yaml"])[2].endswith("demo.yaml")
    assert main(["bogus"]) == 2


@pytest.mark.parametrize("name", ["vit.yaml", "hrnet.yaml", "demo.yaml"])
def test_shipped_configs_resolve_with_print_config(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", name, "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert model["loss"]["class_path"] == "focal_pl.losses.SoftContrastiveLoss"
    assert config["evaluation"]["metrics_file"] == "metrics.json"
    if name == "vit.yaml":  # the paper's setting
        assert model["extractor"]["init_args"]["size"] == "large"
        assert model["optimizer"]["init_args"]["lr"] == 1e-4
        assert model["scheduler"]["init_args"] == {**model["scheduler"]["init_args"], "mode": "max",
                                                   "factor": 0.5, "patience": 3}
        assert config["trainer"]["precision"] == "bf16-mixed"
        assert config["data"]["image_size"] == 1024
        assert model["clusterer"]["init_args"]["min_cluster_size"] == 200


def test_paper_configs_instantiate(tmp_path, monkeypatch):
    """Every class of vit.yaml / hrnet.yaml builds (on the meta device: no 1.2 GB of weights)."""
    from focal_pl.cli import build_cli_class
    from focal_pl.data import ForgeryDataModule
    from focal_pl.module import FocalModule

    monkeypatch.chdir(tmp_path)
    for name in ("vit.yaml", "hrnet.yaml"):
        with torch.device("meta"):
            cli = build_cli_class()(FocalModule, ForgeryDataModule, subclass_mode_model=True,
                                    auto_configure_optimizers=False, run=False,
                                    args=["--config", resolve_config(name)])
        assert cli.model.extractor.out_dim == (256 if name == "vit.yaml" else 32)
        assert cli.datamodule.image_size == 1024 and cli.trainer.max_steps == 760000


def test_fit_writes_checkpoint_metrics_and_pictures_then_validate_test_predict_agree(tmp_path):
    cli = run("fit", root=tmp_path)
    folder = Path(cli.trainer.log_dir)
    record = json.loads((folder / "metrics.json").read_text())
    assert record["untrained"]["images"] == 6 and record["untrained"]["step"] == 0
    assert [e["step"] for e in record["history"]] == [2, 4]
    final = record["final"]
    for key in ("f1", "f1_forged", "iou"):
        assert 0.0 <= final[key] <= 1.0
    assert record["best"]["f1"] == max(e["f1"] for e in record["history"])
    assert (folder / "config.yaml").is_file()
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.is_file() and best.parent == folder / "checkpoints"
    last = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4  # the final state, whatever the best was
    pictures = sorted((folder / "val_images").rglob("*.png"))
    assert {p.parent.name for p in pictures} == {"untrained", "step0000002", "step0000004"}
    assert len(pictures) == 9
    strip = cv2.imread(str(pictures[0]))
    assert strip.shape[1] == 3 * 256 + 2 * 4  # image | truth | prediction, enlarged from 64

    # validate the best checkpoint: the same model on the same images gives the same numbers
    again = run("validate", "--ckpt_path", str(best), root=tmp_path)
    assert again.trainer.callback_metrics["val/f1"].item() == pytest.approx(record["best"]["f1"], abs=1e-6)

    # evaluation-time choices given with a checkpoint are kept (Lightning alone would replace them)
    kmeans = run("validate", "--ckpt_path", str(best), "--model.init_args.clusterer.init_args.algorithm",
                 "kmeans", root=tmp_path)
    assert kmeans.model.clusterer.algorithm == "kmeans"

    tested = run("test", "--ckpt_path", str(best), "--data.test", json.dumps(
        [{"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 4, "size": 64}}]
    ), root=tmp_path)
    assert torch.isfinite(tested.trainer.callback_metrics["test/loss"])

    predicted = run("predict", "--ckpt_path", str(best), "--data.predict", json.dumps(
        [{"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 5, "size": 64}}]
    ), root=tmp_path)
    items = [item for batch in predicted.trainer.predict_loop.predictions for item in batch]
    assert len(items) == 5 and items[0]["mask"].shape == (16, 16) and items[0]["mask"].dtype == torch.bool

    # the checkpoint alone rebuilds the module (the config travels in it)
    from focal_pl.module import FocalModule

    module = FocalModule.load_from_checkpoint(best, weights_only=True)
    assert module.extractor.out_dim == 16 and module.clusterer.min_cluster_size == 0.05


def test_bf16_mixed_precision_by_config_alone(tmp_path):
    cli = run("fit", "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "2",
              "--trainer.num_sanity_val_steps", "0",
              "--model.init_args.loss.init_args.warmup_steps", "0.5", root=tmp_path)
    assert cli.trainer.precision == "bf16-mixed"
    assert cli.model.loss.warmup_until == 1  # half of the 2 steps, resolved when fitting starts
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    assert 0.0 <= cli.trainer.callback_metrics["val/f1"].item() <= 1.0


def test_ddp_on_two_cpu_processes_by_config_alone(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--trainer.strategy", "ddp", "--trainer.devices", "2",
               "--trainer.logger.init_args.save_dir", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in out.stderr + out.stdout
    record = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    # each rank clusters 3 of the 6 validation images; the synced means count all 6
    assert record["untrained"]["images"] == 6 and record["final"]["images"] == 6


def test_a_run_reports_the_unreadable_items_it_skipped(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    for i in range(8):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
        mask = np.zeros((64, 64), np.uint8)
        mask[8:30, 10:40] = 255
        Image.fromarray(mask).save(tmp_path / "data" / "masks" / f"{i}.png")
    (images / "8.png").write_bytes(b"")  # an empty file among them
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "data" / "masks" / "8.png")
    source = json.dumps([{"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {"images": str(images)}}])
    run("fit", "--data.train", source, "--data.val", source, "--trainer.max_steps", "2",
        "--trainer.num_sanity_val_steps", "0", root=tmp_path)
    out = capsys.readouterr().out
    assert "skipped" in out and "unreadable item(s)" in out


@pytest.mark.parametrize("data", ["data/paper_mix.yaml", "data/test_sets.yaml"])
def test_data_configs_lay_over_the_model_configs(data, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["test", "--config", "vit.yaml", "--config", data, "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    if data.endswith("paper_mix.yaml"):
        train = config["data"]["train"]
        assert train["class_path"] == "focal_pl.data.StreamingShards" and len(train["init_args"]["paths"]) == 6
    else:
        readers = [s["class_path"].rsplit(".", 1)[1] for s in config["data"]["test"]]
        assert readers == ["Columbia", "Coverage", "CASIA", "NIST16", "MISD", "FaceForensics"]
