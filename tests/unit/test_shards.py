"""Streaming shards: original bytes kept, bad items reported, chunk-by-chunk resumable writing,
checksums verified by `data check` and by training, exact weighted streaming, mid-epoch resumption."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focal_pl.cli.data import main as data_main
from focal_pl.data.datamodule import ForgeryDataModule
from focal_pl.data.shards import (
    JOURNAL,
    ShardJobError,
    ShardFolder,
    ShardSource,
    StreamingShards,
    sample_meta,
    verify_shards,
    write_shards,
)
from focal_pl.data.synthetic import SyntheticForgeries
from helpers.images import CHUNK, fixture_sources, folder_set

def chunk_sums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("chunk-*.bin"))}


def test_shards_keep_original_bytes_and_report_bad_items(shards):
    root, source, manifest = shards
    out = root / "out"
    assert manifest["items_written"] == 11 and manifest["items_skipped"] == 1
    assert manifest["run"] == {"state": "written", "resumed_from": 0, "damaged": []}
    assert len(manifest["chunks"]) >= 3  # several chunks, each with its sha256
    assert [s["items_written"] for s in manifest["sources"]] == [6, 5]
    assert "broken.jpg" in manifest["skipped"][0]["item"]
    assert "corrupt or truncated" in manifest["skipped"][0]["reason"]
    import litdata

    raw = litdata.StreamingDataset(str(out))  # litdata reads the chunks as its own
    assert len(raw) == 11
    by_name = {sample_meta(raw[i])["name"]: raw[i] for i in range(len(raw))}
    for i in range(6):
        path = root / "data" / "images" / f"im{i}.jpg"
        assert hashlib.sha256(bytes(by_name[str(path)]["image"])).digest() == hashlib.sha256(path.read_bytes()).digest()
    shard_source = ShardSource(str(out))
    assert len(shard_source) == 11
    decoded = {meta["name"]: (image, mask) for image, mask, meta in (shard_source[i] for i in range(11))}
    for i in (i for i in range(len(source)) if "broken" not in source.describe(i)):
        image, mask, meta = source[i]
        assert np.array_equal(decoded[meta["name"]][0], image)
        assert np.array_equal(decoded[meta["name"]][1], mask)
    assert verify_shards(out) == []


def test_checksums_catch_a_damaged_chunk(shards, tmp_path):
    root, _, _ = shards
    copy = tmp_path / "copy"
    shutil.copytree(root / "out", copy)
    chunk = sorted(copy.glob("chunk-*.bin"))[1]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside a stored JPEG
    chunk.write_bytes(bytes(data))
    assert verify_shards(copy) == [chunk.name]


def test_an_interrupted_conversion_resumes_chunk_by_chunk_to_the_unbroken_result(shards, tmp_path, capsys):
    root, _, manifest = shards
    copy = tmp_path / "resumed"
    shutil.copytree(root / "out", copy)
    unbroken = chunk_sums(root / "out")
    lines = (copy / JOURNAL).read_text().splitlines()
    kept = [json.loads(line) for line in lines[:2]]
    stamps = {e["chunk"]: (copy / e["chunk"]).stat().st_mtime_ns for e in kept}
    # as if killed while writing the third chunk: its entry cut off, later chunks and the index never written
    (copy / JOURNAL).write_text("\n".join(lines[:2]) + "\n" + lines[2][:15])
    for entry in map(json.loads, lines[2:]):
        if entry["chunk"]:
            (copy / entry["chunk"]).unlink()
    (copy / ".chunk-000009.bin.tmp").write_bytes(b"half a chunk")
    (copy / "index.json").unlink()
    (copy / "manifest.json").unlink()
    said = []
    again = write_shards(fixture_sources(root), copy, chunk_bytes=CHUNK, progress=False, say=said.append)
    assert again["run"]["state"] == "resumed" and again["run"]["resumed_from"] == kept[-1]["end"]
    assert said == [f"resuming {copy}: {kept[-1]['end']} of 12 items already done in 2 chunk(s); "
                    f"converting the remaining {12 - kept[-1]['end']}"]
    assert {e: (copy / e).stat().st_mtime_ns for e in stamps} == stamps  # finished chunks not redone
    assert chunk_sums(copy) == unbroken  # the very chunks of an unbroken run
    assert not list(copy.glob(".*.tmp"))
    assert again["items_written"] == manifest["items_written"] and again["items_skipped"] == 1
    complete = write_shards(fixture_sources(root), copy, chunk_bytes=CHUNK, progress=False)
    assert complete["run"]["state"] == "complete"
    (copy / "manifest.json").write_text("{garbage")  # rewritten from the journal, chunks untouched
    repaired = write_shards(fixture_sources(root), copy, chunk_bytes=CHUNK, progress=False)
    assert repaired["run"]["state"] == "repaired" and repaired["chunks"] == complete["chunks"]
    assert chunk_sums(copy) == unbroken
    with pytest.raises(ShardJobError, match=r"other arguments: --chunk-bytes 6,000 there, 7,000 now; rerun"):
        write_shards(fixture_sources(root), copy, chunk_bytes="7KB", progress=False)
    with pytest.raises(ShardJobError, match="1 source.s. there, 2 now|2 source.s. there, 1 now"):
        write_shards(fixture_sources(root)[:1], copy, chunk_bytes=CHUNK, progress=False)
    (copy / "plan.json").write_text("[1, 2")
    with pytest.raises(ShardJobError, match="plan.json is unreadable"):
        write_shards(fixture_sources(root), copy, chunk_bytes=CHUNK, progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ShardJobError, match="not empty and holds no shard job"):
        write_shards(fixture_sources(root), tmp_path / "foreign", progress=False)


def test_shard_command_reports_what_it_did(tmp_path, capsys):
    folder_set(tmp_path / "data")
    images, out = str(tmp_path / "data"), str(tmp_path / "s")
    assert data_main(["shard", "folder", images, "--out", out, "--chunk-bytes", CHUNK]) == 0
    first = capsys.readouterr().out
    assert "wrote 6 items to" in first and "1 skipped" in first and "broken.jpg" in first
    assert data_main(["shard", "folder", images, "--out", out, "--chunk-bytes", CHUNK]) == 0
    chunks = len(list(Path(out).glob("chunk-*.bin")))
    assert capsys.readouterr().out.startswith(f"already complete: 6 items in {chunks} chunks, nothing to do")
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "data" / "images" / "real.png")
    assert data_main(["shard", "folder", images, "--out", out, "--include-authentic", "--chunk-bytes", CHUNK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "other arguments: source 1 (folder) had 7 items there, 8 now (--include-authentic" in err
    assert data_main(["shard", "folder", images, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--chunk-bytes 6,000 there, 128,000,000 now" in err and err.count("\n") == 1
    assert data_main(["check", out]) == 0
    capsys.readouterr()
    data_main(["check", "folder", images])  # the authentic real.png is not checked unless asked: say so
    assert "1 authentic image(s) under the root were left out: add --include-authentic" in capsys.readouterr().out
    data_main(["check", "folder", images, "--include-authentic"])
    assert "left out" not in capsys.readouterr().out


def test_every_data_option_has_help(capsys):
    import re

    for action, options in (("check", ("--include-authentic", "--workers", "--limit", "--json", "--no-verify")),
                            ("shard", ("--include-authentic", "--workers", "--out", "--chunk-bytes"))):
        with pytest.raises(SystemExit):
            data_main([action, "--help"])
        text = capsys.readouterr().out
        for option in options:  # each option, then its help text (on its line or the next)
            assert re.search(rf"^\s+{option}\b[^\n]*(\n\s{{10,}})?\s*[A-Za-z(]", text, re.M), (action, option, text)


def test_weighted_streaming_batches_and_mid_epoch_resume(shards, tmp_path):
    root, _, _ = shards
    second = write_shards([SyntheticForgeries(16, 40, seed=9)], tmp_path / "second", progress=False)
    assert second["items_written"] == 16
    paths = [str(root / "out"), str(tmp_path / "second")]

    def loader():
        stream = StreamingShards(paths, weights=[0.5, 0.5], seed=1)
        return ForgeryDataModule(train=stream, image_size=32, batch_size=2, num_workers=0).train_dataloader()

    first = loader()
    assert len(first) == 16  # 16 + 16 items: equal shares, the larger folder seen once
    iterator = iter(first)
    seen = [next(iterator) for _ in range(3)]
    assert all(b.image.shape == (2, 3, 32, 32) and b.mask.shape == (2, 1, 32, 32) for b in seen)
    state = first.state_dict()
    rest = [b.name for b in iterator]
    everything = [n for b in seen for n in b.name] + [n for b in rest for n in b]
    synthetic = sum(n.startswith("synthetic-9") for n in everything)
    assert synthetic == 16 and len(set(n for n in everything if n.startswith("synthetic-9"))) == 16
    resumed = loader()
    resumed.load_state_dict(state)
    assert [b.name for b in resumed] == rest  # the epoch goes on where it stopped


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


def test_data_check_folder_accepts_the_sets_root(tmp_path, capsys):
    folder_set(tmp_path / "set", corrupt=False)
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "set" / "images" / "real.png")
    assert data_main(["check", "folder", str(tmp_path / "set"), "--include-authentic"]) == 0
    out = capsys.readouterr().out
    assert "7 items: 6 forged, 1 authentic" in out  # the masks are masks, not authentic images
    (tmp_path / "nomasks" / "images").mkdir(parents=True)
    shutil.copy(tmp_path / "set" / "images" / "im0.jpg", tmp_path / "nomasks" / "images")
    assert data_main(["check", "folder", str(tmp_path / "nomasks"), "--include-authentic"]) == 2
    err = capsys.readouterr().err
    assert "no masks folder" in err and "images/ and masks/" in err and "Traceback" not in err


def test_data_check_counts_items_with_notes_as_forged(tmp_path, capsys):
    from test_sources import box_mask, photo, save

    root = tmp_path / "COVERAGE"
    for n in range(1, 5):
        save(root / "image" / f"{n}t.tif", photo(seed=n))
        mask = box_mask() if n < 3 else np.kron(box_mask(), np.ones((2, 2), np.uint8))  # twice the size
        save(root / "mask" / f"{n}forged.tif", mask)
    assert data_main(["check", "coverage", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 items: 4 forged, 0 authentic, 2 with notes, 0 problems" in out
    assert "resized to the image's" in out


def damage(folder: Path, how: str) -> str:
    """Damage a copy of a shard folder; returns the name of what was damaged."""
    chunk = sorted(folder.glob("chunk-*.bin"))[1]
    if how == "flip":
        data = bytearray(chunk.read_bytes())
        data[-40] ^= 0x10
        chunk.write_bytes(bytes(data))
    elif how == "truncate":
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    elif how == "delete":
        chunk.unlink()
    elif how in ("index", "manifest"):
        target = folder / f"{how}.json"
        target.write_bytes(b"\x00garbage{" + os.urandom(50))
        return target.name
    return chunk.name


@pytest.mark.parametrize("how", ["flip", "truncate", "delete", "index", "manifest"])
def test_data_check_names_each_kind_of_damage(shards, tmp_path, capsys, how):
    root, _, _ = shards
    copy = tmp_path / "copy"
    shutil.copytree(root / "out", copy)
    name = damage(copy, how)
    assert data_main(["check", str(copy)]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("  PROBLEM")]
    assert problems and all(name in line for line in problems), out
    expected = {"flip": "sha256 differs", "truncate": "truncated", "delete": "missing",
                "index": "not readable JSON", "manifest": "not readable JSON"}[how]
    assert expected in problems[0]
    if how == "flip":  # without verification, no checksum problem (the decode may or may not trip on the bit)
        data_main(["check", str(copy), "--no-verify"])
        out = capsys.readouterr().out
        assert "checksums not verified" in out and "sha256" not in out


def epoch_names(loader) -> tuple[list[str], list[tuple[str, str]], int]:
    names, problems, skipped = [], [], 0
    for batch in loader:
        assert batch.image.shape[0] == loader.batch_size  # substitutes keep batches whole
        names += batch.name
        problems += batch.problems
        skipped += batch.skipped
    return names, problems, skipped


@pytest.mark.parametrize("how", ["flip", "truncate", "delete", "index", "manifest"])
def test_training_reports_a_damaged_chunk_by_name_and_skips_its_items(shards, tmp_path, how, caplog):
    root, _, _ = shards
    copy = tmp_path / "copy"
    shutil.copytree(root / "out", copy)
    name = damage(copy, how)
    stream = StreamingShards([str(copy)], seed=4)
    with caplog.at_level(logging.WARNING, logger="focal_pl.data.shards"):
        loader = ForgeryDataModule(train=stream, image_size=32, batch_size=2, num_workers=0).train_dataloader()
    names, problems, skipped = epoch_names(loader)
    assert len(names) == len(loader) * 2
    if how in ("index", "manifest"):  # the other file stands in; reported in the training process
        assert any(name in record.getMessage() for record in caplog.records)
        assert skipped == 0 and not problems
        assert len(set(names)) == 11
        return
    schedule = stream.schedule()
    folder = stream.folders()[0]
    bad = [c.name for c in folder.chunks].index(name)
    served = [item for _, _, _, item in schedule.keys(0, 1, 0, 2)]
    in_bad = sum(folder.locate(item)[0] == bad for item in served)
    assert skipped == in_bad == len(problems) > 0  # each occurrence counted
    assert {where for where, _ in problems} == {str(copy / name)}  # named by its chunk
    assert "skipped" in problems[0][1]


def test_a_fit_on_damaged_shards_finishes_and_warns_once(shards, tmp_path, caplog):
    import lightning as L

    from focal_pl.extractors import ForensicCNN
    from focal_pl.losses import InfoNCELoss
    from focal_pl.module import FocalModule

    root, _, _ = shards
    copy = tmp_path / "copy"
    shutil.copytree(root / "out", copy)
    name = damage(copy, "flip")
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        enable_checkpointing=False)
    module = FocalModule(ForensicCNN(width=4, depth=4, out_dim=8), loss=InfoNCELoss(), scheduler=None)
    data = ForgeryDataModule(train=StreamingShards([str(copy)], seed=2), image_size=32, batch_size=2,
                             num_workers=0)
    with caplog.at_level(logging.WARNING):
        trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2 * 6  # 11 items padded to 12: 6 batches an epoch, both epochs whole
    warnings = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(warnings) == 1 and "sha256 differs" in warnings[0]
    assert module.skipped_items > 0


class NameRecorder:
    """Lightning callback recording the item names of every training batch."""

    def __init__(self):
        from lightning.pytorch.callbacks import Callback

        recorder = self

        class _Callback(Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                recorder.names.append(tuple(batch.name))

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
        trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                            callbacks=callbacks,
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
    assert len(unbroken) == 4 and first == unbroken[:2] and resumed == unbroken[2:4]


def test_two_loader_workers_serve_the_schedule_and_verify_per_process(shards, tmp_path):
    root, _, _ = shards
    copy = tmp_path / "copy"
    shutil.copytree(root / "out", copy)
    name = damage(copy, "flip")
    stream = StreamingShards([str(copy)], repeats=[3], seed=7)
    loader = ForgeryDataModule(train=stream, image_size=32, batch_size=2, num_workers=2).train_dataloader()
    names, problems, skipped = epoch_names(loader)
    assert len(names) == 34  # 33 scheduled, padded to 34
    assert {where for where, _ in problems} == {str(copy / name)} and skipped == len(problems)
    counts = Counter(names)
    assert max(counts.values()) <= 3 + 1 + 16  # each item 3 times, plus padding and substitutes


def test_val_split_holds_shard_items_out_of_every_training_epoch(shards):
    """paper_mix.yaml validates on 1000 items held out of the streamed training mix, never on a test set."""
    root, _, _ = shards
    stream = StreamingShards([str(root / "out")], seed=3)
    module = ForgeryDataModule(train=stream, val_split=4, image_size=32, batch_size=2, num_workers=0)
    val = module.dataset("val")
    held = {val.data[i][2]["name"] for i in range(len(val))}
    assert len(val) == 4 and len(held) == 4
    schedule = stream.schedule()
    assert len(schedule) == len(ShardFolder(root / "out")) - 4
    for epoch in range(3):  # none of them is ever trained on, and every other item is, once an epoch
        _, items = schedule.order(epoch)
        assert not set(items.tolist()) & set(stream.held_out[0].tolist())
        assert len(set(items.tolist())) == len(items)
    again = StreamingShards([str(root / "out")], seed=3)
    assert [s.items.tolist() for s in again.hold_out(4)] == [stream.held_out[0].tolist()]  # every rank, every resume


def test_counts_cap_each_folder_at_a_fixed_seeded_set_and_a_short_folder_is_said(shards, tmp_path, caplog):
    """``counts``: at most that many distinct items of a folder, the same ones every epoch, apart from
    the validation split; a folder holding fewer serves all it has, once, and one warning says so."""
    from focal_pl.data.shards import MixSchedule

    chunks = [[5, 5, 5], [4, 4]]  # folders of 15 and 8 items
    schedule = MixSchedule(chunks, repeats=[1, 3], counts=[6, None], seed=2)
    assert schedule.sizes == [6, 8] and len(schedule) == 6 + 24
    first = [set(schedule.order(e)[1][schedule.order(e)[0] == 0].tolist()) for e in range(3)]
    assert len(first[0]) == 6 and first[0] == first[1] == first[2]  # a fixed set, not a new draw per epoch
    assert MixSchedule(chunks, counts=[6, None], seed=2).allowed[0].tolist() == sorted(first[0])
    held = MixSchedule(chunks, counts=[6, 20], seed=2, exclude=[[0, 1, 2], []])
    assert held.sizes == [6, 8] and not {0, 1, 2} & set(held.allowed[0].tolist())
    with pytest.raises(ValueError, match="counts must be 2 whole numbers"):
        MixSchedule(chunks, counts=[0, None])
    root, _, _ = shards
    size = len(ShardFolder(root / "out"))
    stream = StreamingShards([str(root / "out")], counts=[size + 5], seed=3)
    with caplog.at_level(logging.WARNING, logger="focal_pl"):
        assert len(stream.schedule()) == size
        stream.schedule()
    said = [r.getMessage() for r in caplog.records if "fewer than" in r.getMessage()]
    assert len(said) == 1 and f"holds {size:,} items for training, fewer than the {size + 5:,}" in said[0]
    with pytest.raises(ValueError, match="1 shard folders but 2 counts"):
        StreamingShards([str(root / "out")], counts=[1, 2])


@pytest.mark.parametrize("name", ["paper_mix", "official_mix"])
def test_each_mix_says_how_many_items_an_epoch_holds_and_the_budget_how_many_epochs(name):
    """The number in each mix's header is the file's own counts x repeats; vit.yaml's budget says how
    many epochs of each mix it is, to two decimals."""
    import re

    import yaml

    from focal_pl.cli.shipped import configs_dir

    text = (configs_dir() / "data" / f"{name}.yaml").read_text()
    init = yaml.safe_load(text)["data"]["train"]["init_args"]
    repeats = init.get("repeats") or [1] * len(init["paths"])
    items = sum(c * r for c, r in zip(init["counts"], repeats))
    stated = int(re.search(r"One epoch holds ([\d,]+) items", text).group(1).replace(",", ""))
    assert stated == items and len(init["counts"]) == len(init["paths"])
    vit = (configs_dir() / "vit.yaml").read_text()
    budget = yaml.safe_load(vit)["budget"]["images"]
    epochs = re.search(rf"([\d.]+) (?:epochs )?of data/{name}\.yaml \(([\d,]+)", vit)
    assert epochs and float(epochs.group(1)) == round(budget / items, 2)
    assert int(epochs.group(2).replace(",", "")) == items
    assert "issue #16" in vit
