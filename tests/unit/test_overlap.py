"""A test set that shares images with the data the model was trained or validated on is named, file
by file, whether that data was a folder or shards of it, and whatever the test command's own config
says: the checkpoint's run decides what it was trained on."""

from __future__ import annotations

import shutil

from helpers.images import pairs_folder

from focal_pl.data import ForgeryDataModule
from focal_pl.data.shards import StreamingShards, write_shards
from focal_pl.data.sources import FolderPairs

from helpers.paths import TESTS
TINY = str(TESTS / "configs" / "tiny.yaml")


def test_shards_keep_each_items_name_and_hash_and_the_check_reads_them(tmp_path, caplog):
    train = pairs_folder(tmp_path / "train", 6)
    write_shards([FolderPairs(str(train))], tmp_path / "shards", chunk_bytes="4KB", progress=False)
    lists = sorted((tmp_path / "shards").glob("chunk-*.bin.items.tsv"))
    assert len(lists) > 1 and sum(len(p.read_text().splitlines()) for p in lists) == 6
    test = pairs_folder(tmp_path / "test", 2, seed=5)
    shutil.copy(train / "im3.png", test / "moved.png")  # the same bytes under another name
    shutil.copy(train.parent / "masks" / "im3.png", test.parent / "masks" / "moved.png")
    module = ForgeryDataModule(train=StreamingShards([str(tmp_path / "shards")]), val_split=2,
                               test=[FolderPairs(str(test)), FolderPairs(str(train))], image_size=32, num_workers=0)
    with caplog.at_level("WARNING", logger="focal_pl.data.datamodule"):
        module.setup("test")
    assert f"test image {test / 'moved.png'} is also in the training data: {train / 'im3.png'} (in shards" in caplog.text
    for i in range(6):  # every shard item (training or held out for validation) is found by path and content
        assert f"test image {train / f'im{i}.png'} is also in the training data" in caplog.text
    assert "same content (val)" in caplog.text and "same content (train)" in caplog.text


