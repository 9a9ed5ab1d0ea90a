"""The faults that lived in the shell around the core, each as a user or a cluster meets it: a config
that does not fit its checkpoint, list-form stream sources, predict folders (reused, shared,
empty), damaged release files, a non-finite loss, what a folder holds after a failed write, and
what a run folder means to each command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focal_pl.cli import main
from focal_pl.cli.lightning import run_lightning
from helpers.paths import said, tiny_args


def photos(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"photo{i}.png")
    return folder


def source(folder: Path) -> str:
    return json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder", "init_args": {"root": str(folder)}}])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A trained tiny run (validated at steps 2 and 4)."""
    root = tmp_path_factory.mktemp("trained")
    cli = run_lightning(tiny_args("fit", root, "--trainer.num_sanity_val_steps", "0"))
    return Path(cli.trainer.log_dir)


def test_a_config_that_does_not_fit_the_checkpoint_is_one_line_and_leaves_no_folder(trained, tmp_path, capfd):
    """validate with another extractor than the checkpoint's: no state_dict traceback, one line
    naming the first mismatched key and the config the checkpoint was trained with."""
    capfd.readouterr()
    before = sorted(p.name for p in trained.iterdir())
    code = main(tiny_args("validate", tmp_path, "--ckpt_path", str(trained),
                          "--model.init_args.extractor.init_args.width", "12"))
    err = said(capfd.readouterr().err)
    assert code == 2 and len(err) == 1, err
    assert "does not fit the configured model: extractor." in err[0] and "in the checkpoint" in err[0]
    assert "trained with extractor focal_pl.extractors.ForensicCNN" in err[0] and '"width": 8' in err[0]
    assert str(trained / "config.yaml") in err[0]
    assert sorted(p.name for p in trained.iterdir()) == before  # no validate_K left behind


def test_a_run_folder_means_its_best_checkpoint_to_an_evaluation_and_its_last_to_a_resume(trained, capsys):
    from focal_pl.cli.runfolders import resolve_checkpoint

    record = json.loads((trained / "metrics.json").read_text())
    best = trained / "checkpoints" / f"best-step={record['best']['step']}.ckpt"
    for command in ("validate", "test", "predict"):
        assert resolve_checkpoint(str(trained), trained.parent, command) == best
    assert resolve_checkpoint(str(trained), trained.parent, "fit") == trained / "checkpoints" / "last.ckpt"
    from focal_pl.release import checkpoint_of

    assert checkpoint_of(trained) == best  # export follows the same rule


def test_a_list_form_stream_source_trains_and_missing_shard_folders_are_all_said(shards, tmp_path, capfd):
    root, _, _ = shards
    stream = json.dumps([{"class_path": "focal_pl.data.StreamingShards", "init_args": {"paths": [str(root / "out")]}}])
    cli = run_lightning(tiny_args("fit", tmp_path / "runs", "--data.train", stream, "--data.val_split", "2",
                                  "--data.val", "null", "--trainer.max_steps", "2", "--trainer.num_sanity_val_steps",
                                  "0", "--data.batch_size", "2"))
    assert cli.datamodule.stream is not None and cli.trainer.global_step == 2
    missing = json.dumps([{"class_path": "focal_pl.data.StreamingShards",
                           "init_args": {"paths": [str(tmp_path / "nowhere")]}}])
    capfd.readouterr()
    assert main(tiny_args("fit", tmp_path / "other", "--data.train", missing)) == 2
    assert said(capfd.readouterr().err) == [
        f"focal-pl fit: data.train.0.init_args.paths: StreamingShards shard folder {tmp_path / 'nowhere'} does not "
        "exist (make it with `focal-pl data shard`)"]
    capfd.readouterr()
    assert main(["fit", "--config", "vit.yaml", "--config", "data/paper_mix.yaml",
                 "--trainer.logger.init_args.save_dir", str(tmp_path / "paper")]) == 2
    lines = said(capfd.readouterr().err)  # the six shard folders of the mix, each said, at once
    assert len(lines) == 6 and all("shard folder" in line and "does not exist (make it with" in line for line in lines)
    assert [line.split("/shards/")[1].split()[0] for line in lines] == ["sp_coco", "cm_coco", "cm_raise", "cm_c_raise",
                                                                       "casia2", "imd2020"]


def test_each_predict_gets_its_own_folder_and_a_given_one_is_never_mixed(trained, tmp_path, capfd):
    images = photos(tmp_path / "photos")
    first = run_lightning(tiny_args("predict", tmp_path, "--ckpt_path", str(trained), "--data.predict", source(images)))
    second = run_lightning(tiny_args("predict", tmp_path, "--ckpt_path", str(trained), "--data.predict", source(images)))
    assert Path(first.trainer.log_dir).name == "predict_0" and Path(second.trainer.log_dir).name == "predict_1"
    out = tmp_path / "mine"
    run_lightning(tiny_args("predict", tmp_path, "--ckpt_path", str(trained), "--data.predict", source(images),
                            "--prediction.output_dir", str(out)))
    written = sorted(p.name for p in out.iterdir())
    assert "scores.csv" in written and "index.html" in written and ".lock" not in written
    header = (out / "scores.csv").read_text().splitlines()[0].split(",")
    assert "f1" not in header and "pixel_auc" not in header  # no ground truth: no all-NaN metric columns
    capfd.readouterr()
    folders = sorted(p.name for p in trained.iterdir())
    assert main(tiny_args("predict", tmp_path, "--ckpt_path", str(trained), "--data.predict", source(images),
                          "--prediction.output_dir", str(out))) == 2
    err = said(capfd.readouterr().err)
    assert len(err) == 1 and "holds predictions already" in err[0] and str(out) in err[0]
    assert sorted(p.name for p in out.iterdir()) == written  # nothing replaced
    assert sorted(p.name for p in trained.iterdir()) == folders  # and no empty predict_K left


def test_a_folder_another_predict_holds_is_refused(tmp_path):
    from focal_pl.evaluation.prediction import PredictionFolderError, PredictionWriter

    holder, other = PredictionWriter(), PredictionWriter()
    holder.claim(tmp_path / "shared")
    with pytest.raises(PredictionFolderError, match=r"is being written by predict, process \d+"):
        other.claim(tmp_path / "shared")
    holder.release()
    other.claim(tmp_path / "shared")  # free again once the first let go


def test_a_lock_names_its_holder_until_it_is_let_go(tmp_path):
    import os

    from focal_pl.files import locks

    path = tmp_path / ".lock"
    assert locks.holder(path) is None  # absent
    descriptor = locks.hold(path, "process 1 on here (fit)")
    assert locks.holder(path) == "process 1 on here (fit)"
    with pytest.raises(locks.LockHeld) as refused:
        locks.hold(path, "process 2")
    assert refused.value.holder == "process 1 on here (fit)" and path.read_text() == "process 1 on here (fit)"
    os.close(descriptor)
    assert locks.holder(path) is None
    os.close(locks.hold(path, "process 2"))  # free again, and the new holder's line replaces the old one
    assert path.read_text() == "process 2"


def test_a_predict_with_nothing_predicted_fails(trained, tmp_path, capfd):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG not an image")
    capfd.readouterr()
    code = main(tiny_args("predict", tmp_path, "--ckpt_path", str(trained), "--data.predict", source(folder)))
    err = said(capfd.readouterr().err)
    assert code == 1, err
    assert err[-1] == ("focal-pl predict: nothing was predicted: 1 image(s) were skipped, none was readable "
                       "(the warnings above say why)")


def test_a_damaged_release_is_refused_naming_the_tensor(trained, tmp_path, capfd):
    from focal_pl.release import ReleaseError, export, load, read_release

    target, _ = export(trained, tmp_path / "model.pt")
    release = read_release(target)
    assert release["weights_sha256"] and set(release["weights_sha256"]) == set(release["weights"])
    name, tensor = next((k, v) for k, v in release["weights"].items() if v.numel() >= 100)
    data = bytearray(target.read_bytes())
    raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
    at = bytes(data).find(raw[:256])
    assert at > 0
    data[at:at + 400] = bytes(255 - b for b in data[at:at + 400])  # 400 bytes inside one weight tensor
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=rf"damaged.pt: its weights do not match the sha256 stored at export: "
                                           rf"{name.replace('.', '[.]')} damaged"):
        load(damaged)
    capfd.readouterr()
    assert main(["predict", "--weights", str(damaged), "--data.predict", source(photos(tmp_path / "p")),
                 "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]) == 2
    err = said(capfd.readouterr().err)
    assert len(err) == 1 and err[0].startswith("focal-pl predict: weights: ") and name in err[0]
    assert not (tmp_path / "runs").exists()


def test_an_export_writes_no_temporary_and_clears_a_dead_ones(trained, tmp_path):
    from focal_pl.release import export

    dead = tmp_path / ".model.pt.999999999.tmp"  # what a SIGKILL left where no anonymous file could be made
    dead.write_bytes(b"half")
    export(trained, tmp_path / "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.md", "model.pt"]


def test_a_non_finite_loss_is_one_line_naming_the_step_and_the_batch(tmp_path, capfd):
    capfd.readouterr()
    code = main(tiny_args("fit", tmp_path, "--model.init_args.optimizer.init_args.lr", "1e30",
                          "--trainer.num_sanity_val_steps", "0"))
    err = said(capfd.readouterr().err)
    assert code == 1
    assert len([line for line in err if line.startswith("focal-pl fit:")]) == 1 and "Traceback" not in "\n".join(err)
    line = next(line for line in err if line.startswith("focal-pl fit:"))
    assert "loss is nan at step" in line or "loss is inf at step" in line
    assert "(batch " in line and "synthetic-1" in line and "last.ckpt" in line


def test_the_failure_line_names_a_whole_checkpoint_written_where_last_ckpt_failed(tmp_path):
    """A full disk stopped last.ckpt's write after best-step=8.ckpt was whole: the line says so, and
    `--ckpt_path last` of that run points to it instead of saying there is nothing."""
    from focal_pl.cli.runfolders import resolve_checkpoint
    from focal_pl.training.checkpoints import RunCheckpoint

    folder = tmp_path / "runs" / "demo" / "version_0" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"global_step": 8, "state_dict": {}}, folder / "best-step=8.ckpt")
    callback = RunCheckpoint()
    callback.dirpath = str(folder)
    said_ = callback.describe_saved()
    assert said_.startswith("no last.ckpt was written; also whole on disk: best-step=8.ckpt (step 8)"), said_
    with pytest.raises(ValueError, match=r"no last checkpoint .* but .*best-step=8.ckpt \(step 8\) is whole: "
                                         r"resume from it with --ckpt_path FILE"):
        resolve_checkpoint("last", tmp_path / "runs" / "demo", "fit")
    torch.save({"global_step": 4, "state_dict": {}}, folder / "last.ckpt")
    callback.last_step = 4
    assert callback.describe_saved().endswith(f"also whole on disk: best-step=8.ckpt (step 8) in {folder}")


def test_every_missing_file_a_config_names_is_said_at_once_before_anything_runs(tmp_path, capfd, monkeypatch):
    """The paper's six test sets (none here), a weights file and a checkpoint that do not exist:
    one line each, exit 2, no folder made, nothing built or read."""
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    code = main(["test", "--config", "vit.yaml", "--config", "data/test_sets.yaml", "--ckpt_path", "gone.ckpt",
                 "--model.init_args.extractor.init_args.weights", "sam_vit_l.pth"])
    lines = said(capfd.readouterr().err)
    assert code == 2 and len(lines) == 8, lines
    roots = [line.split(": ")[2].split(" root ")[0] for line in lines if " root " in line]
    assert roots == ["Columbia", "Coverage", "CASIA", "NIST16", "MISD", "FaceForensics"]
    assert f"focal-pl test: model.init_args.extractor.init_args.weights: SamViT weights file " \
           f"{tmp_path / 'sam_vit_l.pth'} does not exist" in lines
    assert f"focal-pl test: ckpt_path: {tmp_path / 'gone.ckpt'} does not exist" in lines
    assert not list(tmp_path.iterdir())


def test_a_test_on_images_without_masks_says_what_it_cannot_score_and_the_card_shows_a_scored_one(trained, tmp_path,
                                                                                                 capsys):
    from focal_pl.release import export

    sets = json.dumps([{"class_path": "focal_pl.data.SyntheticForgeries",
                        "init_args": {"length": 4, "size": 64, "seed": 7, "authentic_fraction": 0.5}}])
    run_lightning(tiny_args("test", tmp_path, "--ckpt_path", str(trained), "--data.test", sets))
    scored = capsys.readouterr().out
    assert "Test results (4 images, each at 2 resolutions)" in scored  # each image counted once
    strips = sorted((trained / "test_0" / "pictures" / "synthetic-7").glob("*.png"))
    assert len(strips) == 4 and strips[0].name.startswith("00_synthetic-7")
    with Image.open(strips[0]) as strip:  # image | truth | prediction | score map, captioned
        assert strip.width == 4 * 256 + 3 * 4
    run_lightning(tiny_args("test", tmp_path, "--ckpt_path", str(trained), "--data.test",
                            source(photos(tmp_path / "photos", 3))))
    out = capsys.readouterr().out
    assert "Test results (3 images, each at 2 resolutions)" in out
    assert "images: 3 images without a ground truth" in out and "no pixel metric" in out
    _, card = export(trained, tmp_path / "model.pt")
    text = card.read_text()
    newest = max(int(p.name.split("_")[1]) for p in trained.glob("test_*"))
    assert f"Test (test_{newest - 1})" in text and "| synthetic-7 | " in text  # the scored test, not the last one


def test_no_shipped_config_points_outside_the_package():
    """A shipped config names only placeholders for the user's data (/data/..., shards/...) or what the
    project makes itself: never a folder beside the developers' checkout."""
    import yaml

    from focal_pl.cli.preflight import named_paths
    from focal_pl.cli.shipped import configs_dir, shipped_configs

    for name in shipped_configs():
        text = (configs_dir() / name).read_text()
        assert ".." not in "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")), name
        for key, _, path in named_paths(yaml.safe_load(text) or {}):
            assert path.startswith(("/data/", "shards/")), (name, key, path)


def test_a_gpu_sized_fit_on_several_cpu_processes_is_warned_about_with_a_step_estimate(capsys):
    from types import SimpleNamespace

    from focal_pl.extractors import ForensicCNN
    from focal_pl.module import FocalModule
    from focal_pl.training.progress import CpuWarning, cpu_step_seconds

    module = FocalModule(ForensicCNN(width=8, depth=4, out_dim=8))
    small = cpu_step_seconds(module, 128, 1)
    assert 0 < small < cpu_step_seconds(module, 1024, 4)  # more pixels and images: longer
    trainer = SimpleNamespace(world_size=4, is_global_zero=True, strategy=SimpleNamespace(root_device=SimpleNamespace(
        type="cpu")), datamodule=SimpleNamespace(image_size=1024, batch_size=1))
    CpuWarning().on_fit_start(trainer, module)
    said = capsys.readouterr().out
    assert "at 1024 px on 4 CPU processes: about" in said and "s per step" in said and said.count("\n") == 1
    trainer.world_size = 1
    CpuWarning().on_fit_start(trainer, module)
    assert capsys.readouterr().out == ""  # one process: nothing to say


def test_ablate_and_sweep_say_every_missing_path_before_the_first_run(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = tmp_path / "sets.yaml"
    sets.write_text("data:\n  test:\n"
                    "    - {class_path: focal_pl.data.sources.CASIA, init_args: {root: /nowhere/CASIA1}}\n"
                    "    - {class_path: focal_pl.data.sources.Columbia, init_args: {root: /nowhere/Columbia}}\n")
    capfd.readouterr()
    assert main(["ablate", "losses", "--only", "nce", "scl_soft_image", "--test", str(sets),
                 "--out", str(tmp_path / "out")]) == 2
    lines = said(capfd.readouterr().err)
    assert [line.split(": ", 2)[2] for line in lines] == ["CASIA root /nowhere/CASIA1 does not exist",
                                                         "Columbia root /nowhere/Columbia does not exist"], lines
    assert all(line.startswith("focal-pl ablate: data.test.") for line in lines)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()  # nothing trained
    capfd.readouterr()
    assert main(["sweep", "temperature", "--count", "2", "--out", str(tmp_path / "sweep"),
                 "--data.train", '[{class_path: focal_pl.data.sources.FolderPairs, init_args: {images: /gone}}]']) == 2
    lines = said(capfd.readouterr().err)
    assert lines == ["focal-pl sweep: data.train.0.init_args.images: FolderPairs images folder /gone does not exist"]
    assert not (tmp_path / "sweep").exists()
