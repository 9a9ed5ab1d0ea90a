"""The paths a user runs, on CUDA: fit (bf16, validation by clustering on the GPU), validate, test
and predict with a checkpoint, fusion, the baseline. Marked ``gpu``: skipped without CUDA, run by
``make gpu-check``. The first GPU run of ``focal-pl fit`` crashed in the validation callback on a
CPU/CUDA tensor mix, which no CPU test could see; these tests are where such a bug shows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focal_pl.cli.lightning import run_lightning
from helpers.paths import TINY

pytestmark = pytest.mark.gpu
ON_GPU = ["--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.precision", "bf16-mixed"]


def cli(*args, root: Path):
    return run_lightning([args[0], "--config", "demo.yaml", "--config", TINY, *ON_GPU,
                          "--trainer.logger.init_args.save_dir", str(root), *args[1:]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gpu")
    run = cli("fit", root=root)
    assert run.model.device.type == "cuda"
    record = json.loads((Path(run.trainer.log_dir) / "metrics.json").read_text())
    assert record["untrained"]["images"] == 6 and [e["step"] for e in record["history"]] == [2, 4]
    assert 0.0 <= record["final"]["f1"] <= 1.0 and len(list((Path(run.trainer.log_dir) / "val_images").rglob("*.png")))
    return Path(run.trainer.log_dir)


def test_fit_validates_by_clustering_on_the_gpu(trained):
    assert (trained / "checkpoints" / "last.ckpt").is_file()


def test_validate_test_predict_with_a_checkpoint_and_fusion_on_the_gpu(trained, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "images" / f"im{i}.png")
        mask = np.zeros((60, 80), np.uint8)
        mask[10:40, 20:50] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"im{i}.png")
    source = json.dumps([{"class_path": "focal_pl.data.sources.FolderPairs",
                          "init_args": {"images": str(tmp_path / "images")}}])
    fused = json.dumps({"class_path": "focal_pl.extractors.FusedExtractor",
                        "init_args": {"checkpoints": [str(trained / "checkpoints" / "last.ckpt")] * 2}})
    union = ["--model.init_args.extractor", fused, "--model.init_args.clusterer.init_args.fusion", "union"]
    tested = cli("test", *union, "--data.test", source, root=tmp_path / "runs")
    predicted = cli("predict", *union, "--data.predict", source, root=tmp_path / "runs")
    validated = cli("validate", "--ckpt_path", str(trained), "--data.val", source, root=tmp_path / "runs")
    test_rows = {r["name"]: r for r in csv.DictReader((Path(tested.trainer.log_dir) / "per_image.csv").open())}
    out = Path(predicted.trainer.log_dir)
    for row in csv.DictReader((out / "scores.csv").open()):
        a = np.asarray(Image.open(Path(tested.trainer.log_dir) / test_rows[row["name"]]["mask_file"]))
        assert np.array_equal(a, np.asarray(Image.open(out / row["mask_file"])))
    assert 0.0 <= validated.trainer.callback_metrics["val/f1"].item() <= 1.0


def test_the_baseline_trains_and_masks_on_the_gpu(tmp_path):
    run = cli("fit", "--model", "focal_pl.module.PixelClassifier",
              "--model.init_args.loss", "focal_pl.losses.PixelBCELoss", root=tmp_path)
    assert run.model.device.type == "cuda" and 0.0 <= run.trainer.callback_metrics["val/f1"].item() <= 1.0


def test_clustering_runs_where_the_features_are_and_returns_host_masks():
    from focal_pl.clustering import Clusterer

    features = torch.randn(2, 16, 24, 24, device="cuda")
    features[:, :, 4:12, 4:12] += 3.0
    masks = Clusterer(min_cluster_size=20).cluster_batch(features)
    assert all(m.device.type == "cpu" and s.device.type == "cpu" for m, s in masks)
