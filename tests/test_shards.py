"""Streaming shards: original bytes kept, bad items reported, resumable writing, weighted streaming,
mid-epoch resumption, and the data commands."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focal_pl.data.commands import main as data_main
from focal_pl.data.datamodule import ForgeryDataModule
from focal_pl.data.shards import ShardSource, StreamingShards, sample_meta, verify_shards, write_shards
from focal_pl.data.sources import FolderPairs
from focal_pl.data.synthetic import SyntheticForgeries

TINY = str(Path(__file__).parent / "configs" / "tiny.yaml")


def folder_set(root: Path, n: int = 6, corrupt: bool = True) -> FolderPairs:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
            root / "images" / f"im{i}.jpg", quality=int(70 + i))
        mask = np.zeros((40, 48), np.uint8)
        mask[5 : 15 + i, 10:30] = 255
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    if corrupt:
        (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / "broken.png")
    return FolderPairs(str(root / "images"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    source = folder_set(root / "data")
    manifest = write_shards([source, SyntheticForgeries(5, 48, seed=3)], root / "out",
                            part_size=8, progress=False)
    return root, source, manifest


def test_shards_keep_original_bytes_and_report_bad_items(shards):
    root, source, manifest = shards
    out = root / "out"
    assert manifest["items_written"] == 11 and manifest["items_skipped"] == 1
    assert "broken.jpg" in manifest["skipped"][0]["item"]
    assert "corrupt or truncated" in manifest["skipped"][0]["reason"]
    import litdata

    raw = litdata.StreamingDataset(str(out))
    by_name = {sample_meta(raw[i])["name"]: raw[i] for i in range(len(raw))}
    for i in range(6):
        path = root / "data" / "images" / f"im{i}.jpg"
        stored = by_name[str(path)]
        assert hashlib.sha256(bytes(stored["image"])).digest() == hashlib.sha256(path.read_bytes()).digest()
    shard_source = ShardSource(str(out))
    assert len(shard_source) == 11
    decoded = {meta["name"]: (image, mask) for image, mask, meta in (shard_source[i] for i in range(11))}
    for i in range(6):
        image, mask, meta = source[[source.describe(k) for k in range(len(source))].index(
            str(root / "data" / "images" / f"im{i}.jpg"))]
        assert np.array_equal(decoded[meta["name"]][0], image)
        assert np.array_equal(decoded[meta["name"]][1], mask)
    assert verify_shards(out) == []


def test_checksums_catch_a_damaged_chunk(shards, tmp_path):
    import shutil

    root, _, _ = shards
    copy = tmp_path / "copy"
    shutil.copytree(root / "out", copy)
    chunk = next(copy.glob("chunk-*.bin"))
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert verify_shards(copy) == [chunk.name]


def test_an_interrupted_conversion_resumes_without_redoing_finished_parts(shards, tmp_path):
    import shutil

    root, source, manifest = shards
    copy = tmp_path / "resumed"
    shutil.copytree(root / "out", copy)
    first_part = sorted(copy.glob("chunk-p00000-*"))
    stamps = [p.stat().st_mtime_ns for p in first_part]
    # as if killed during part 1: its record, the index and the manifest are missing
    (copy / "parts" / "p00001.json").unlink()
    for chunk in copy.glob("chunk-p00001-*"):
        chunk.unlink()
    (copy / "index.json").unlink()
    (copy / "manifest.json").unlink()
    again = write_shards([source, SyntheticForgeries(5, 48, seed=3)], copy, part_size=8, progress=False)
    assert [p.stat().st_mtime_ns for p in sorted(copy.glob("chunk-p00000-*"))] == stamps
    assert again["items_written"] == manifest["items_written"] and again["items_skipped"] == 1
    assert len(ShardSource(str(copy))) == 11
    with pytest.raises(ValueError, match="other sources or settings"):
        write_shards([source], copy, part_size=8, progress=False)


def test_weighted_streaming_batches_and_mid_epoch_resume(shards, tmp_path):
    root, _, _ = shards
    second = write_shards([SyntheticForgeries(16, 40, seed=9)], tmp_path / "second", part_size=100,
                          progress=False)
    assert second["items_written"] == 16
    stream = StreamingShards([str(root / "out"), str(tmp_path / "second")], weights=[0.5, 0.5], seed=1)
    module = ForgeryDataModule(train=stream, image_size=32, batch_size=2, num_workers=0)
    loader = module.train_dataloader()
    iterator = iter(loader)
    seen = [next(iterator) for _ in range(3)]
    assert all(b["image"].shape == (2, 3, 32, 32) and b["mask"].shape == (2, 1, 32, 32) for b in seen)
    sources = {n.startswith("synthetic-9") for b in seen for n in b["name"]}
    state = loader.state_dict()
    rest = [b["name"] for b in iterator]
    resumed = ForgeryDataModule(train=StreamingShards([str(root / "out"), str(tmp_path / "second")],
                                                      weights=[0.5, 0.5], seed=1),
                                image_size=32, batch_size=2, num_workers=0).train_dataloader()
    resumed.load_state_dict(state)
    assert [b["name"] for b in resumed] == rest  # the epoch goes on where it stopped
    assert sources  # both streams delivered


def test_data_check_lists_problems_with_exit_code(tmp_path, capsys):
    folder_set(tmp_path / "data")
    code = data_main(["check", "folder", str(tmp_path / "data" / "images"), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "7 items: 6 forged, 0 authentic" in out and "PROBLEM" in out and "broken.jpg" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sources"][0]["problems"][0]["item"].endswith("broken.jpg")
    clean = tmp_path / "clean"
    folder_set(clean, corrupt=False)
    assert data_main(["check", "folder", str(clean / "images")]) == 0
    yaml_spec = tmp_path / "sources.yaml"
    yaml_spec.write_text(f"- class_path: focal_pl.data.sources.FolderPairs\n  init_args:\n    images: {clean / 'images'}\n")
    assert data_main(["check", str(yaml_spec)]) == 0


def test_data_shard_command(tmp_path, capsys):
    folder_set(tmp_path / "data")
    code = data_main(["shard", "folder", str(tmp_path / "data" / "images"), "--out", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert code == 0 and "wrote 6 items" in out and "1 skipped" in out and "broken.jpg" in out
    assert data_main(["check", str(tmp_path / "s")]) == 0


def test_ddp_streaming_gives_equal_batches_on_two_ranks(shards, tmp_path):
    root, _, _ = shards
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    train = json.dumps({"class_path": "focal_pl.data.StreamingShards",
                        "init_args": {"paths": [str(root / "out")]}})
    command = [sys.executable, "-m", "focal_pl", "fit", "--config", "demo.yaml", "--config", TINY,
               "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_steps", "-1",
               "--trainer.max_epochs", "1", "--trainer.val_check_interval", "null",
               "--data.batch_size", "2", "--data.train", train,
               "--trainer.logger.init_args.save_dir", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = (next(tmp_path.rglob("metrics.csv"))).read_text()
    rows = list(csv.DictReader(io.StringIO(metrics)))
    steps = {int(row["step"]) for row in rows if row.get("train/loss")}
    # 11 items over 2 ranks with batch 2 and drop_last: 2 full batches on each rank
    assert max(steps) + 1 == 2, metrics


class NameRecorder:
    """Lightning callback recording the item names of every training batch."""

    def __init__(self):
        from lightning.pytorch.callbacks import Callback

        recorder = self

        class _Callback(Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                recorder.names.append(tuple(batch["name"]))

        self.names: list[tuple[str, ...]] = []
        self.callback = _Callback()


def test_fit_resumes_mid_epoch_from_a_checkpoint(shards, tmp_path):
    import lightning as L

    from focal_pl.extractors import ForensicCNN
    from focal_pl.losses import InfoNCELoss
    from focal_pl.module import FocalModule

    root, _, _ = shards

    def fit(max_steps, ckpt=None, every=None):
        L.seed_everything(0)
        recorder = NameRecorder()
        callbacks = [recorder.callback]
        if every:
            from lightning.pytorch.callbacks import ModelCheckpoint

            callbacks.append(ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=every,
                                             save_top_k=-1, filename="{step}"))
        trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, callbacks=callbacks,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0, enable_checkpointing=bool(every))
        module = FocalModule(ForensicCNN(width=4, depth=4, out_dim=8), loss=InfoNCELoss(), scheduler=None)
        data = ForgeryDataModule(train=StreamingShards([str(root / "out")], seed=2), image_size=32,
                                 batch_size=2, num_workers=0)
        trainer.fit(module, datamodule=data, ckpt_path=ckpt)
        return recorder.names

    unbroken = fit(4)
    first = fit(2, every=2)
    checkpoint = tmp_path / "ckpt" / "step=2.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the loader's position
    resumed = fit(4, ckpt=str(checkpoint))
    assert first == unbroken[:2] and resumed == unbroken[2:4]
