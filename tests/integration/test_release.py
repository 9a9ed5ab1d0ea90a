"""Handing a model on: `focal-pl export` writes a weights-only release file and a model card; the
file loads in a fresh process with weights_only=True, and `predict --weights`, `test --weights` and
`focal_pl.load(...).localize(...)` give the masks `predict --ckpt_path` gives; the official FOCAL
state dicts convert into the same format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focal_pl.cli import main
from helpers.paths import TINY


class Done:
    """What a command in this process did: its exit code and what it wrote."""

    def __init__(self, returncode: int, stdout: str = "", stderr: str = "") -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def focal(*args: str, cwd: Path | None = None, capfd=None) -> Done:
    """``focal-pl ARGS`` in this process (from ``cwd``), its output captured with ``capfd``."""
    before = os.getcwd()
    if capfd is not None:
        capfd.readouterr()
    try:
        os.chdir(cwd or before)
        try:
            code = main(list(args))
        except SystemExit as stop:
            code = stop.code or 0
    finally:
        os.chdir(before)
    out = capfd.readouterr() if capfd is not None else None
    return Done(code, out.out if out else "", out.err if out else "")


def photos(folder: Path, n: int = 3) -> Path:
    """Photos of several sizes (none the training size), one with a pasted noisy square."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for i, (h, w) in enumerate([(90, 120), (70, 70), (150, 100)][:n]):
        image = (rng.random((h, w, 3)) * 60 + 100).astype(np.uint8)
        image[10:40, 20:60] = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"photo{i}.png")
    return folder


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[Path, Path]:
    """A trained tiny run, tested once, and its release file."""
    root = tmp_path_factory.mktemp("release")
    fit = focal("fit", "--config", "demo.yaml", "--config", TINY, "--trainer.num_sanity_val_steps", "0",
                "--trainer.logger.init_args.save_dir", str(root / "runs"))
    assert fit.returncode == 0, fit.stderr[-2000:]
    run = next((root / "runs").glob("demo/version_*"))
    sets = json.dumps([{"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 3, "size": 64, "seed": 7}}])
    tested = focal("test", "--config", "demo.yaml", "--config", TINY, "--ckpt_path", str(run), "--data.test", sets)
    assert tested.returncode == 0, tested.stderr[-2000:]
    out = focal("export", str(run), "--out", str(root / "model.pt"))
    assert out.returncode == 0, out.stderr[-2000:]
    return run, root / "model.pt"


def test_the_release_file_is_weights_only_plain_data_with_a_card(released):
    run, release = released
    code = ("import torch, sys; r = torch.load(sys.argv[1], weights_only=True); "
            "print(r['format'], r['image_size'], sorted(r), type(r['weights']).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(release)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[:2] == ["focal-pl-release/1", "64"]  # a fresh process, no focal_pl imported
    loaded = torch.load(release, weights_only=True)
    assert loaded["model"]["class_path"] == "focal_pl.module.FocalModule"
    assert "optimizer" not in loaded["model"]["init_args"]  # what builds the model, not what trained it
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    checkpoint = torch.load(best, weights_only=True)
    assert all(torch.equal(loaded["weights"][k], v) for k, v in checkpoint["state_dict"].items())
    assert loaded["source"]["step"] == checkpoint["global_step"] and loaded["source"]["checkpoint"] == str(best)
    assert loaded["figures"]["validation"]["best"]["f1"] == json.loads((run / "metrics.json").read_text())["best"]["f1"]
    assert loaded["figures"]["test"]["folder"] == "test_0"
    assert loaded["provenance"]["code"] == json.loads((run / "run.json").read_text())["code"]
    card = release.with_suffix(".md").read_text()
    assert "## Training" in card and "SyntheticForgeries synthetic-1 (16 items)" in card
    assert f"validation, best (step {checkpoint['global_step']})" in card and "| synthetic-7 | 3 | 0 | grid |" in card
    assert "focal-pl predict --weights model.pt" in card and 'focal_pl.load("model.pt")' in card


def test_predict_and_localize_with_the_release_give_the_checkpoints_masks(released, tmp_path, capfd):
    run, release = released
    folder = photos(tmp_path / "photos")
    data = json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder", "init_args": {"root": str(folder)}}])
    by_ckpt = focal("predict", "--config", "demo.yaml", "--config", TINY, "--ckpt_path",
                    str(next((run / "checkpoints").glob("best-*.ckpt"))), "--data.predict", data, capfd=capfd)
    assert by_ckpt.returncode == 0, by_ckpt.stderr[-2000:]
    by_release = focal("predict", "--weights", str(release), "--data.predict", data,
                       "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), cwd=tmp_path, capfd=capfd)
    assert by_release.returncode == 0, by_release.stderr[-2000:]
    first = next(run.glob("predict_*"))
    second = next((tmp_path / "runs" / "model").glob("predict_*"))  # named after the release file
    import focal_pl

    model = focal_pl.load(release)
    for name in ("photo0", "photo1", "photo2"):
        a = np.asarray(Image.open(first / f"{name}_mask.png")) > 0
        b = np.asarray(Image.open(second / f"{name}_mask.png")) > 0
        assert a.shape == b.shape and np.array_equal(a, b), name
        path = folder / f"{name}.png"
        for given in (path, str(path), Image.open(path), np.asarray(Image.open(path)),
                      np.asarray(Image.open(path)).astype(np.float32) / 255):
            mask, score, share = model.localize(given)
            assert np.array_equal(mask, a), (name, type(given).__name__)
            assert score.shape == mask.shape and score.dtype == np.uint8 and share == pytest.approx(a.mean())


def test_test_with_a_release_reports_beside_its_checkpoint(released, tmp_path, capfd):
    run, release = released
    sets = json.dumps([{"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 3, "size": 64, "seed": 7}}])
    out = focal("test", "--weights", str(release), "--data.test", sets,
                "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), cwd=tmp_path, capfd=capfd)
    assert out.returncode == 0, out.stderr[-2000:]
    ours = json.loads(next((tmp_path / "runs" / "model").glob("test_*/results.json")).read_text())["results"]
    theirs = json.loads((run / "test_0" / "results.json").read_text())["results"]
    assert [e["f1"] for e in ours] == pytest.approx([e["f1"] for e in theirs])


def test_bad_release_files_are_one_line(released, tmp_path, capfd):
    run, release = released
    checkpoint = str(next((run / "checkpoints").glob("best-*.ckpt")))
    for given, expected in ((checkpoint, "not a focal-pl release"), (str(tmp_path / "none.pt"), "does not exist")):
        out = focal("predict", "--weights", given, cwd=tmp_path, capfd=capfd)
        said = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(said) == 1 and said[0].startswith("focal-pl predict: weights: "), said
        assert expected in said[0]
    out = focal("predict", "--weights", str(release), "--ckpt_path", checkpoint, cwd=tmp_path, capfd=capfd)
    assert out.returncode == 2 and "not both" in out.stderr
    out = focal("export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.pt"), capfd=capfd)
    assert out.returncode == 2 and "does not exist" in out.stderr


@pytest.mark.parametrize("kind", ["vit", "hrnet"])
def test_official_focal_weights_convert_to_a_release(kind, tmp_path, capfd):
    """State dicts in the official layout (DataParallel's ``module.``, FOCAL_ViT's ``net.`` + SAM's
    ``image_encoder.`` with its prompt encoder; FOCAL_HRNet's ``net.`` + the pose HRNet), made here
    from small models: the release rebuilds the extractor with exactly those weights."""
    from focal_pl.release import load, read_release
    from helpers.official import official_hrnet, official_vit

    source, state = official_vit() if kind == "vit" else official_hrnet()
    official = tmp_path / f"FOCAL_{kind}_weights.pth"
    torch.save(state, official)
    out = focal("export", "--official", str(official), "--out", str(tmp_path / "official.pt"), "--image-size", "64",
                capfd=capfd)
    assert out.returncode == 0, out.stderr[-2000:]
    release = read_release(tmp_path / "official.pt")
    extractor = release["model"]["init_args"]["extractor"]
    assert extractor["class_path"].endswith("SamViT" if kind == "vit" else "HRNet")
    assert "weights" not in extractor["init_args"]  # the release holds the weights, not a path to them
    model = load(tmp_path / "official.pt")
    source.eval()
    x = torch.rand(1, 3, 64, 64)
    from focal_pl.extractors import HRNet, SamViT

    direct = (SamViT("tiny", img_size=64, weights=str(official)) if kind == "vit"
              else HRNet("w18_small", weights=str(official))).eval()  # the file given to the extractor itself
    with torch.no_grad():
        converted = model.module.extractor(x)
        assert torch.allclose(converted, source(x), atol=1e-5)
        assert torch.allclose(converted, direct(x), atol=1e-5)
    card = (tmp_path / "official.md").read_text()
    assert "Converted from the official FOCAL release" in card and "Published (FOCAL (" in card


def test_two_converted_official_releases_fuse_without_retraining(tmp_path, capfd):
    """The official weights converted (ViT and HRNet) are fusion members as they are: the fused
    features are each member's unit features, the HRNet's brought to the ViT's grid the official
    way (nearest), in the order given."""
    import torch.nn.functional as F

    from focal_pl.extractors import FusedExtractor
    from helpers.official import official_hrnet, official_vit

    releases, sources = [], []
    for kind, make in (("vit", official_vit), ("hrnet", official_hrnet)):
        source, state = make()
        torch.save(state, tmp_path / f"FOCAL_{kind}_weights.pth")
        out = focal("export", "--official", str(tmp_path / f"FOCAL_{kind}_weights.pth"),
                    "--out", str(tmp_path / f"{kind}.pt"), "--image-size", "64", capfd=capfd)
        assert out.returncode == 0, out.stderr[-2000:]
        releases.append(str(tmp_path / f"{kind}.pt"))
        sources.append(source.eval())
    fused = FusedExtractor(checkpoints=releases, resize="nearest").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        vit, hrnet = (F.normalize(s(x), dim=1) for s in sources)
        expected = torch.cat([vit, F.interpolate(hrnet, size=vit.shape[-2:], mode="nearest")], dim=1)
        got = fused(x)
    assert fused.member_channels == [vit.shape[1], hrnet.shape[1]]
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
    assert not any(p.requires_grad for p in fused.parameters())  # members are frozen


def test_official_yaml_predicts_with_a_converted_release_as_the_official_code(tmp_path, capfd):
    """``--config official.yaml`` over a release: cosine k-means and bilinear mask resizing reach
    predict (its run config says so) and its masks are ``focal_pl.load(..., clusterer=..., mask_resize=...)``'s."""
    import focal_pl
    from focal_pl.clustering import Clusterer
    from helpers.official import official_vit

    _, state = official_vit()
    torch.save(state, tmp_path / "FOCAL_ViT_weights.pth")
    assert focal("export", "--official", str(tmp_path / "FOCAL_ViT_weights.pth"), "--out", str(tmp_path / "focal_vit.pt"),
                 "--image-size", "64", capfd=capfd).returncode == 0
    folder = photos(tmp_path / "photos")
    out = focal("predict", "--weights", "focal_vit.pt", "--config", "official.yaml", "--data.predict", "ImageFolder",
                "--data.predict.root", "photos", cwd=tmp_path, capfd=capfd)
    assert out.returncode == 0, out.stderr[-2000:]
    folder_out = next((tmp_path / "runs" / "focal_vit").glob("predict_*"))
    import yaml

    config = yaml.safe_load((folder_out / "config.yaml").read_text())
    assert config["model"]["init_args"]["clusterer"]["init_args"]["algorithm"] == "cosine_kmeans"
    assert config["prediction"]["mask_resize"] == "bilinear"
    model = focal_pl.load(tmp_path / "focal_vit.pt", clusterer=Clusterer(algorithm="cosine_kmeans"),
                          mask_resize="bilinear")
    for name in ("photo0", "photo1", "photo2"):
        written = np.asarray(Image.open(folder_out / f"{name}_mask.png")) > 0
        assert np.array_equal(written, model.localize(folder / f"{name}.png").mask), name
