"""Commands refused before anything runs, each as one line naming what is wrong and nothing left on
disk: a read-only run root, unusable checkpoint files (damaged, empty, truncated, foreign, a
folder), empty image folders; and validate naming the step its checkpoint was trained to."""

from __future__ import annotations

import contextlib
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import torch

from focal_pl.cli import main
from focal_pl.cli.lightning import run_lightning
from helpers.disks import small_disk
from helpers.paths import said, tiny_args


def run(capfd, root: Path, *extra: str, verb: str = "fit") -> tuple[int, list[str], str]:
    """``focal-pl VERB`` of demo.yaml + tiny.yaml in this process: its exit code, its stderr lines
    and its stdout."""
    capfd.readouterr()
    code = main(tiny_args(verb, root, "--trainer.num_sanity_val_steps", "0", *extra))
    out = capfd.readouterr()
    return code, said(out.err), out.out



def test_a_read_only_run_root_is_one_line_before_anything_runs(tmp_path, capfd):
    root = tmp_path / "ro"
    root.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only filesystem instead
        context = small_disk(root, "1m", ",ro")
    else:
        root.chmod(0o555)
        context = contextlib.nullcontext(root)
    with context:
        code, err, _ = run(capfd, root / "runs", "--trainer.max_steps", "2")
        assert code == 2 and len(err) == 1, err  # nothing else said
        assert re.fullmatch(rf"focal-pl fit: run folder: cannot create (a folder in )?{re.escape(str(root))}/runs\S*: "
                            r"(Read-only file system|Permission denied)", err[0]), err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    run_lightning(tiny_args("fit", root, "--trainer.num_sanity_val_steps", "0", "--trainer.max_steps", "2",
                            "--trainer.val_check_interval", "2"))
    return next(root.glob("demo/version_*/checkpoints/last.ckpt"))


def damage_a_weight(source: Path, target: Path) -> None:
    """Copy a checkpoint with 64 bytes inside its first weight tensor overwritten (the zip stays valid)."""
    data = bytearray(source.read_bytes())
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    first = next(iter(checkpoint["state_dict"].values()))
    raw = first.reshape(-1).view(torch.uint8).numpy().tobytes()
    at = bytes(data).find(raw[:256])
    assert at > 0
    data[at:at + 64] = bytes(255 - b for b in data[at:at + 64])
    target.write_bytes(bytes(data))
    with zipfile.ZipFile(target) as archive:  # still a readable archive: only the check can tell
        assert archive.namelist()


@pytest.mark.parametrize("kind, expected", [
    ("damaged", r"its weights or optimizer state do not match the sha256 stored when it was written"),
    ("empty", r"is empty \(0 bytes\)"),
    ("truncated", r"truncated or not a torch file"),
    ("text", r"truncated or not a torch file|cannot be read as a checkpoint"),
    ("weights", r"not a Lightning checkpoint \(no state_dict"),
    ("folder", r"a folder without checkpoints/last.ckpt"),
])
def test_an_unusable_checkpoint_is_one_line_naming_it_before_any_folder(kind, expected, trained, tmp_path, capfd):
    bad = tmp_path / "bad.ckpt"
    if kind == "damaged":
        damage_a_weight(trained, bad)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    elif kind == "text":
        bad.write_text("not a checkpoint\n")
    elif kind == "weights":
        torch.save({"extractor.head.weight": torch.zeros(2)}, bad)
    else:
        bad.mkdir()
    runs = tmp_path / "runs"
    for verb in ("validate", "test", "fit"):
        code, err, _ = run(capfd, runs, "--ckpt_path", str(bad), verb=verb)
        assert code == 2 and len(err) == 1, (verb, err)
        assert err[0].startswith(f"focal-pl {verb}: ckpt_path: {bad}") and re.search(expected, err[0]), err
        assert not runs.exists()


def test_a_damaged_checkpoint_is_refused_when_loaded_from_python_too(trained, tmp_path):
    from focal_pl.files.checkpoint import CheckpointError, read_checkpoint
    from focal_pl.module import FocalModule

    bad = tmp_path / "bad.ckpt"
    damage_a_weight(trained, bad)
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        read_checkpoint(bad)
    assert FocalModule.load_from_checkpoint(trained, weights_only=True).trained_steps == 2
    with pytest.raises(CheckpointError, match="bad.ckpt.*do not match the sha256"):
        FocalModule.load_from_checkpoint(bad, weights_only=True)


def test_a_checkpoint_replaced_while_it_is_read_is_read_again(trained, tmp_path, monkeypatch):
    """A fit under way renames a new last.ckpt over the old one; a memory-mapped read that saw half of
    each (torn: its digest fails) is read again, and a file damaged at rest is still refused."""
    import focal_pl.files.checkpoint as checkpoint_io

    target, damaged = tmp_path / "last.ckpt", tmp_path / "damaged.ckpt"
    target.write_bytes(trained.read_bytes())
    damage_a_weight(trained, damaged)
    real_load, calls = torch.load, []

    def torn(file, *args, **kwargs):
        calls.append(file)
        if len(calls) == 1:  # the reader sees the damaged bytes while the writer renames a whole file in
            loaded = real_load(damaged, *args, **kwargs)
            replacement = tmp_path / "next.ckpt"
            replacement.write_bytes(trained.read_bytes())
            os.utime(replacement, ns=(1, 1))
            os.replace(replacement, target)
            return loaded
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(checkpoint_io.torch, "load", torn)
    assert checkpoint_io.read_checkpoint(target, mmap=True)["global_step"] == 2
    assert len(calls) == 2
    calls.clear()
    monkeypatch.setattr(checkpoint_io.torch, "load", lambda file, *a, **k: calls.append(file) or real_load(file, *a, **k))
    with pytest.raises(checkpoint_io.CheckpointError, match="do not match the sha256"):
        checkpoint_io.read_checkpoint(damaged, mmap=True)  # not replaced: one read, refused
    assert len(calls) == 1


@pytest.mark.parametrize("verb", ["fit", "test", "predict"])
def test_an_empty_image_folder_is_one_line_before_any_folder(verb, tmp_path, capfd):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    pairs = json.dumps([{"class_path": "focal_pl.data.sources.FolderPairs",
                         "init_args": {"images": str(tmp_path / "data" / "images")}}])
    photos = json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder",
                          "init_args": {"root": str(tmp_path / "data" / "images")}}])
    code, err, _ = run(capfd, tmp_path / "runs", "--run.allow_untrained", "true", "--data.train", pairs,
                       "--data.test", pairs, "--data.predict", photos, verb=verb)
    assert code == 2 and len(err) == 1, err
    split = {"fit": "train", "test": "test", "predict": "predict"}[verb]
    assert err[0].startswith(f"focal-pl {verb}: data.{split}: ") and "no images found" in err[0]
    assert str(tmp_path / "data" / "images") in err[0]
    assert not (tmp_path / "runs").exists()


def test_validate_reports_the_step_the_checkpoint_was_trained_to(trained, tmp_path, capfd):
    code, err, out = run(capfd, tmp_path, "--ckpt_path", str(trained), "--trainer.enable_progress_bar", "null",
                         verb="validate")
    assert code == 0, err
    assert "validation at step 2:" in out and "validation at step 0" not in out
    assert f"validation of {trained} (step 2): macro F1" in out  # the summary names the model
    assert "Validate metric" not in out  # Lightning's table only with --verbose true
    record = json.loads(next(trained.parent.parent.glob("validate_0/metrics.json")).read_text())
    assert record["final"]["step"] == 2
