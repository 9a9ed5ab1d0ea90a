"""The focal-pl command in this process: the command tree, configs, fit / validate / test / predict,
one-line errors, resume rules (processes, DDP and log files: tests/integration/test_commands.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from focal_pl.cli import COMMANDS, main
from focal_pl.cli.lightning import run_lightning
from focal_pl.cli.shipped import resolve_config, shipped_configs
from helpers.paths import TINY, said, tiny_args


def run(*args: str, root: Path):
    """One in-process LightningCLI run of demo.yaml + tiny.yaml writing under ``root``."""
    return run_lightning(tiny_args(args[0], root, *args[1:]))


def refused(capfd, root: Path, *args: str) -> str:
    """Run a command that must fail on its config, as a user would: exit code 2, exactly one line
    on stderr (nothing else printed there, Lightning's banners included), and nothing on disk."""
    capfd.readouterr()
    code = main(tiny_args(args[0], root, *args[1:]))
    err = said(capfd.readouterr().err)
    assert code == 2 and len(err) == 1, (code, err[-20:])
    assert not root.exists() or not list(root.iterdir()), sorted(root.rglob("*"))  # nothing was created
    return err[0]


def test_bare_config_names_resolve_to_the_shipped_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert {"demo.yaml", "vit.yaml", "hrnet.yaml"} <= set(shipped_configs())
    shipped = resolve_config("vit.yaml")
    assert Path(shipped).is_file() and Path(shipped).parent.name == "configs"
    assert resolve_config("vit") == shipped
    (tmp_path / "vit.yaml").write_text("trainer: {}\n")
    assert resolve_config("vit.yaml") == "vit.yaml"  # a local file of that name wins
    assert resolve_config("nothing.yaml") == "nothing.yaml"
    with pytest.raises(SystemExit):  # `-c demo` is the shipped demo.yaml, from any folder
        main(["fit", "-c", "demo", "--print_config"])


@pytest.mark.parametrize("name", ["vit.yaml", "hrnet.yaml", "demo.yaml"])
def test_shipped_configs_resolve_with_print_config(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", name, "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["evaluation"]["metrics_file"] == "metrics.json"
    checkpoint = config["trainer"]["callbacks"][0]
    assert checkpoint["class_path"] == "focal_pl.training.checkpoints.RunCheckpoint"
    assert checkpoint["init_args"]["monitor"] == "val/score" and checkpoint["init_args"]["mode"] == "max"
    if name != "demo.yaml":  # the paper's setting, from the shared trainer and data sections
        assert config["trainer"]["precision"] == "bf16-mixed"
        assert config["budget"] == {"images": 760000, "validate_every": 10000, "final_validation": True}
        assert config["data"]["image_size"] == 1024 and config["data"]["val_split"] == 1000


def test_vit_and_hrnet_configs_say_only_what_differs():
    from focal_pl.cli.shipped import configs_dir

    vit = yaml.safe_load((configs_dir() / "vit.yaml").read_text())
    hrnet = yaml.safe_load((configs_dir() / "hrnet.yaml").read_text())
    assert vit["trainer"] == hrnet["trainer"] == "paper/trainer.yaml"
    assert vit["data"] == hrnet["data"] == "paper/data.yaml"
    # no block restates a class default (the loss, optimizer and plateau rule are the module's own),
    # but for the validation scoring, stated beside the official code's (official.yaml)
    for config in (vit, hrnet):
        assert set(config["model"]["init_args"]) <= {"extractor", "clusterer", "loss", "val_resolution"}
        assert config["model"]["init_args"]["val_resolution"] == "image"
        assert config["model"]["init_args"]["loss"] == "focal_pl.losses.SoftContrastiveLoss"  # no options restated
    assert "max_steps" not in (configs_dir() / "paper" / "trainer.yaml").read_text()


def test_paper_configs_instantiate_with_the_papers_defaults(tmp_path, monkeypatch):
    """Every class of vit.yaml / hrnet.yaml builds (on the meta device: no 1.2 GB of weights), and
    what the configs leave out is the paper's: SCL, Adam 1e-4, the plateau rule, HDBSCAN 200 (HRNet:
    the same share of its map, clustered at 128 x 128)."""
    from focal_pl.cli.lightning import build_cli_class
    from focal_pl.data import ForgeryDataModule
    from focal_pl.losses import SoftContrastiveLoss
    from focal_pl.module import FocalModule

    monkeypatch.chdir(tmp_path)
    for name in ("vit.yaml", "hrnet.yaml"):
        with torch.device("meta"):
            cli = build_cli_class()(["--config", name], model_class=FocalModule, datamodule_class=ForgeryDataModule,
                                    subclass_mode_model=True, auto_configure_optimizers=False, run=False)
        model = cli.model
        assert model.extractor.out_dim == (256 if name == "vit.yaml" else 32)
        assert isinstance(model.loss, SoftContrastiveLoss) and model.loss.temperature == 0.1
        assert model.loss.scope == "image" and model.loss.coefficients == "within_class"
        assert model.optimizer_factory is None and model.scheduler_factory == "plateau"
        if name == "vit.yaml":  # a 64 x 64 map: the paper's 200 points
            assert model.clusterer.min_cluster_size == 200 and model.clusterer.grid is None
        else:  # 256 x 256 pooled to 128 x 128, the smallest cluster the paper's share of the map
            assert model.clusterer.grid == 128 and model.clusterer.min_cluster_size * 256 * 256 == 200
        assert cli.datamodule.image_size == 1024 and cli.datamodule.val_split == 1000
        assert cli.datamodule.augmentations.pad_to == 1024  # linked to data.image_size, said once
        budget = next(c for c in cli.trainer.callbacks if type(c).__name__ == "TrainingBudget")
        assert budget.images == 760000 and budget.validate_every == 10000


def test_the_budget_in_images_becomes_steps_for_the_batch_and_devices(tmp_path):
    """190 rounds of 4000 images are 190000 steps at batch 4 (not the 760000 the old config had)."""
    from focal_pl.training.budget import TrainingBudget

    class Trainer:  # what TrainingBudget reads of a trainer
        world_size, accumulate_grad_batches, max_epochs, is_global_zero = 1, 1, None, True
        val_check_interval, check_val_every_n_epoch = None, 1

        class datamodule:
            batch_size = 4

        class fit_loop:
            max_epochs = None

            class epoch_loop:
                max_steps = -1

    trainer = Trainer()
    TrainingBudget(images=760000, validate_every=10000).setup(trainer, None, "fit")
    assert trainer.fit_loop.epoch_loop.max_steps == 190000 and trainer.val_check_interval == 2500
    trainer.world_size, trainer.datamodule.batch_size = 4, 1  # the paper's 4 GPUs x 1 image
    TrainingBudget(images=760000, validate_every=10000).setup(trainer, None, "fit")
    assert trainer.fit_loop.epoch_loop.max_steps == 190000 and trainer.val_check_interval == 2500
    with pytest.raises(ValueError, match="budget.images must be a positive"):
        TrainingBudget(images=0)


@pytest.mark.slow
def test_fit_writes_checkpoint_metrics_and_pictures_then_validate_test_predict_agree(tmp_path):
    cli = run("fit", root=tmp_path)
    folder = Path(cli.trainer.log_dir)
    record = json.loads((folder / "metrics.json").read_text())
    assert record["untrained"]["images"] == 6 and record["untrained"]["step"] == 0
    assert [e["step"] for e in record["history"]] == [2, 4]
    final = record["final"]
    for key in ("f1", "f1_forged", "iou"):
        assert 0.0 <= final[key] <= 1.0
    assert record["best"]["score"] == max(e["score"] for e in record["history"])  # mean of F1 and IoU
    assert (folder / "config.yaml").is_file()
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.is_file() and best.parent == folder / "checkpoints"
    last = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4  # the final state, whatever the best was
    pictures = sorted((folder / "val_images").rglob("*.png"))
    assert {p.parent.name for p in pictures} == {"untrained", "step0000002", "step0000004"}
    assert len(pictures) == 9
    strip = cv2.imread(str(pictures[0]))
    assert strip.shape[1] == 4 * 256 + 3 * 4  # image | truth | prediction | score map, enlarged from 64

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
    out = Path(predicted.trainer.log_dir)
    assert out.parent == folder and out.name == "predict_0"  # beside the trained run
    masks = sorted(out.glob("*_mask.png"))
    assert len(masks) == 5 and cv2.imread(str(masks[0]), cv2.IMREAD_GRAYSCALE).shape == (64, 64)
    assert Path(tested.trainer.log_dir) == folder / "test_0" and (folder / "test_0" / "results.md").is_file()

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
    pictures = list(tmp_path.rglob("val_images/*/*.png"))
    assert pictures and all(p.name.count(".") == 1 for p in pictures)  # 00_0.png, not 00_0.png.png


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


@pytest.mark.parametrize("args, expected", [
    (["--model.init_args.loss.init_args.temperature", "-1"], r"model\.init_args\.loss.*temperature must be > 0"),
    (["--model.init_args.clusterer.init_args.min_cluster_size", "0"], r"min_cluster_size"),
    (["--model.init_args.loss.init_args.temprature", "0.2"], r"temprature.*did you mean 'temperature'"),
    (["--trainer.max_step", "20"], r"max_step"),  # no prefix matching: a typo is not max_steps
    (["--traner.max_steps", "3"], r"did you mean '--trainer\.max_steps'\?$"),
    (["--data.batch_size", "0"], r"^focal-pl fit: data\.batch_size: batch_size must be >= 1, got 0$"),
    (["--model.init_args.clusterer.init_args.algorithm", "kmean"],
     r"model\.init_args\.clusterer\.init_args\.algorithm: Expected .*Got value: kmean$"),
    (["--data.train", '[{"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {"images": "/nowhere"}}]'],
     r"/nowhere does not exist"),
])
def test_config_errors_are_one_line_naming_the_key_and_leave_nothing_on_disk(args, expected, tmp_path, capfd):
    import re

    line = refused(capfd, tmp_path / "runs", "fit", *args)
    assert re.search(expected, line), line


def test_evaluation_refuses_a_missing_checkpoint_and_an_untrained_model(tmp_path, capfd):
    line = refused(capfd, tmp_path / "runs", "test", "--ckpt_path", str(tmp_path / "missing.ckpt"))
    assert "missing.ckpt does not exist" in line
    line = refused(capfd, tmp_path / "runs", "test", "--ckpt_path", "last")
    assert "no last checkpoint" in line
    line = refused(capfd, tmp_path / "runs", "validate")
    assert "untrained model" in line and "--ckpt_path" in line
    allowed = run("validate", "--run.allow_untrained", "true", root=tmp_path)  # on purpose, it runs
    assert 0.0 <= allowed.trainer.callback_metrics["val/f1"].item() <= 1.0


def test_resume_takes_only_an_unambiguous_run_with_the_same_config(capsys, tmp_path):
    first = run("fit", "--trainer.max_steps", "2", "--trainer.num_sanity_val_steps", "0", root=tmp_path)
    run_folder = Path(first.trainer.log_dir)
    rows = (run_folder / "metrics.csv").read_text().splitlines()
    resumed = run("fit", "--ckpt_path", "last", "--trainer.max_steps", "4", "--trainer.num_sanity_val_steps", "0",
                  root=tmp_path)
    assert Path(resumed.trainer.log_dir) == run_folder and resumed.trainer.global_step == 4
    assert f"resuming {run_folder.resolve()} from step 2" in capsys.readouterr().out
    after = (run_folder / "metrics.csv").read_text().splitlines()
    # continued, not started anew: the rows of the steps before the checkpoint stay, once; the rows
    # logged at its step (the end-of-fit count) are logged again by the resumed run
    kept = [row for row in rows[1:] if int(row.split(",")[rows[0].split(",").index("step")]) < 2]
    assert len(after) > len(rows) and after[1:len(kept) + 1] == kept and len(kept) >= 4
    assert main(["fit", "--config", "demo.yaml", "--config", TINY, "--trainer.logger.init_args.save_dir",
                 str(tmp_path), "--ckpt_path", str(run_folder), "--model.init_args.loss.init_args.temperature",
                 "0.3"]) == 2
    assert "trained with another config (model.init_args.loss.init_args.temperature: 0.1 -> 0.3)" \
        in capsys.readouterr().err
    run("fit", "--trainer.max_steps", "2", "--trainer.num_sanity_val_steps", "0", root=tmp_path)  # a second run
    assert main(["fit", "--config", "demo.yaml", "--config", TINY, "--trainer.logger.init_args.save_dir",
                 str(tmp_path), "--ckpt_path", "last"]) == 2
    err = capsys.readouterr().err
    assert "several runs" in err and "(step 4)" in err and "(step 2)" in err


def test_one_command_tree_lists_every_subcommand(capsys):
    """`focal-pl --help` is the tree's own help: every subcommand with its line; an unknown one is a
    one-line error (exit 2), as is a tool command given a wrong option."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()}
    assert set(COMMANDS) <= listed and "train an extractor" in out
    assert main(["bogus"]) == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    assert main(["runs", "--jsn"]) == 2
    assert "unrecognized arguments: --jsn" in capsys.readouterr().err


def test_configs_lists_each_shipped_file_with_its_purpose_and_the_sweeps(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "vit.yaml" in out and "SAM ViT-L" in out and "temperature.yaml" in out and "Sweeps" in out
    entries = [line for line in out.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert entries and all(len(line.split(None, 1)) == 2 for line in entries)  # name, then its description


def test_help_of_the_model_lists_the_projects_classes_not_every_torch_module(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", "demo.yaml", "--model.help", "FocalModule"])
    out = capsys.readouterr().out
    assert "focal_pl.extractors.SamViT" in out and "focal_pl.losses.InfoNCELoss" in out
    assert "torch.nn.Conv2d" not in out and "torch.nn.MSELoss" not in out
    assert len(out.splitlines()) < 400


def test_the_budget_sets_the_run_length_through_lightning(tmp_path):
    """The demo's budget in images, for real: 64 images at batch 4 are 16 steps, validated every
    32 images (8 steps); the trainer's own max_steps is left unset."""
    cli = run("fit", "--trainer.max_steps", "-1", "--trainer.val_check_interval", "null",
              "--budget.images", "64", "--budget.validate_every", "32", "--trainer.num_sanity_val_steps", "0",
              root=tmp_path)
    assert cli.trainer.max_steps == 16 and cli.trainer.global_step == 16
    record = json.loads((Path(cli.trainer.log_dir) / "metrics.json").read_text())
    assert [e["step"] for e in record["history"]] == [8, 16]


def test_configs_lists_every_shipped_file_with_a_whole_sentence(tmp_path):
    """`focal-pl configs` used to cut descriptions at the first comment line, mid-sentence."""
    from focal_pl.cli.shipped import catalogue, configs_dir, description, sweeps_dir

    paths = [configs_dir() / n for n in shipped_configs()] + sorted(sweeps_dir().glob("*.yaml"))
    for path in paths:
        said = description(path)
        assert said and said[-1] == ".", f"{path.name}: {said!r} is not a whole sentence"
    two_lines = tmp_path / "x.yaml"
    two_lines.write_text("# One sentence over\n# two lines. And a second.\n#   focal-pl fit --config x.yaml\nk: 1\n")
    assert description(two_lines) == "One sentence over two lines."
    listed = catalogue()
    assert all(p.name in listed for p in paths)


def test_official_yaml_validates_tests_and_predicts_as_the_official_code(capsys, tmp_path, monkeypatch):
    """Laid over a model config: cosine k-means, grid validation and test scoring, bilinear masks in
    validation, test and predict, fp32; everything else stays the config's (the loss, the extractor)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config", "vit.yaml", "--config", "official.yaml", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert model["clusterer"]["init_args"]["algorithm"] == "cosine_kmeans"
    assert model["val_resolution"] == "grid" and model["mask_resize"] == "bilinear"
    assert config["testing"]["resolution"] == "grid" and config["testing"]["mask_resize"] == "bilinear"
    assert config["prediction"]["mask_resize"] == "bilinear" and config["trainer"]["precision"] == "32-true"
    assert model["loss"]["class_path"] == "focal_pl.losses.SoftContrastiveLoss"
    assert model["extractor"]["init_args"]["size"] == "large"
