"""Synthetic forgeries, augmentations and the DataModule."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.images import pairs_folder
import torch

from focal_pl.data import (
    Augmentations,
    ForgeryDataModule,
    ForgeryDataset,
    ForgerySource,
    PhotoPool,
    SyntheticForgeries,
)


@pytest.fixture
def flat_pool(tmp_path):
    """Two flat photos, black and white: a splice is visible exactly where its mask says."""
    for name, value in (("black.png", 10), ("white.png", 245)):
        cv2.imwrite(str(tmp_path / name), np.full((200, 300, 3), value, np.uint8))
    return str(tmp_path)


def test_items_are_reproducible_and_seed_dependent():
    a, b, c = SyntheticForgeries(8, 96, seed=3), SyntheticForgeries(8, 96, seed=3), SyntheticForgeries(8, 96, seed=4)
    for i in range(8):
        (ia, ma, meta_a), (ib, mb, meta_b) = a[i], b[i]
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb) and meta_a == meta_b
    assert any(not np.array_equal(a[i][0], c[i][0]) for i in range(8))


def test_items_are_valid_image_mask_pairs_of_every_kind():
    data = SyntheticForgeries(30, 128, seed=0)
    kinds = set()
    for i in range(len(data)):
        image, mask, meta = data[i]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 1} and mask.any()
        kinds.add(meta["kind"])
    assert kinds == {"splice", "copy_move", "inpaint"}


@pytest.mark.parametrize("boundary", ["sharp", "blended"])
def test_splice_mask_follows_the_pasted_content_through_post_processing(flat_pool, boundary):
    data = SyntheticForgeries(24, 128, pool=flat_pool, kinds=["splice"], boundary=boundary, seed=5)
    resized = 0
    for i in range(len(data)):
        image, mask, meta = data[i]
        resized += image.shape[0] != 128
        host_is_white = "white" in meta["host"]
        bright = image.mean(2) > 127
        content = bright if not host_is_white else ~bright  # where the donor shows
        agreement = (content == mask.astype(bool)).mean()
        assert agreement > 0.97, (i, agreement, meta)
    assert resized > 0  # some items went through the geometric post-processing


def test_photo_pool_defaults_to_scikit_image_and_reads_folders(flat_pool, tmp_path):
    pool = PhotoPool()
    assert len(pool) == 14 and pool[0].dtype == np.uint8 and pool[0].shape[2] == 3
    assert all(p.endswith((".png", ".jpg")) for p in pool.names)
    assert len(PhotoPool(flat_pool)) == 2
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        PhotoPool(str(tmp_path / "missing-folder"))


def test_synthetic_arguments_are_checked():
    with pytest.raises(ValueError, match="kinds"):
        SyntheticForgeries(kinds=["deepfake"])
    with pytest.raises(ValueError, match="boundary"):
        SyntheticForgeries(boundary="soft")
    with pytest.raises(IndexError):
        SyntheticForgeries(length=2)[2]


def test_augmentations_keep_mask_and_content_aligned():
    torch.manual_seed(1)
    augment = Augmentations(p=1.0, pad_to=160, distort_p=1.0)
    for trial in range(25):
        image = np.full((128, 96, 3), 20, np.uint8)
        mask = np.zeros((128, 96), np.uint8)
        y, x = 16 + trial, 10 + trial
        image[y : y + 40, x : x + 30] = 235
        mask[y : y + 40, x : x + 30] = 1
        out_image, out_mask = augment(image, mask)
        assert out_mask.shape == out_image.shape[:2]
        inside = out_image[out_mask.astype(bool)].mean()
        outside = out_image[~out_mask.astype(bool)].mean()
        assert inside > outside + 60, trial  # the bright block is where the mask is


def test_augmentations_differ_between_workers_but_repeat_for_a_seed():
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    augment = Augmentations(p=1.0, pad_to=None)
    torch.manual_seed(11)
    first = augment(image, mask)[0]
    torch.manual_seed(12)
    second = augment(image, mask)[0]
    torch.manual_seed(11)
    third = augment(image, mask)[0]
    assert np.array_equal(first, third) and not np.array_equal(first, second)


class Flaky(ForgerySource):
    """A source whose every third item is broken, as a corrupt file would be."""

    name = "flaky"

    def __len__(self):
        return 9

    def describe(self, index):
        return f"/data/flaky/img_{index}.jpg"

    def load(self, index):
        if index % 3 == 0:
            raise ValueError("truncated JPEG")
        return np.full((40, 50, 3), index, np.uint8), np.zeros((40, 50), np.uint8), {"name": f"img_{index}"}


def test_bad_items_are_reported_skipped_and_counted():
    module = ForgeryDataModule(train=Flaky(), val=Flaky(), image_size=32, batch_size=3, num_workers=0)
    batches = list(module.val_dataloader())
    assert sum(b.skipped for b in batches) == 3
    assert sum(len(b.name) for b in batches if b.usable) == 6
    problems = [p for b in batches for p in b.problems]
    assert ("/data/flaky/img_3.jpg", "truncated JPEG") in problems and len(problems) == 3


def test_datamodule_batches_train_and_eval_splits():
    data = SyntheticForgeries(6, 80, seed=2)
    module = ForgeryDataModule(train=data, val=[data, data], image_size=64, batch_size=4, num_workers=0,
                               augmentations=Augmentations(pad_to=64))
    train = next(iter(module.train_dataloader()))
    assert train.image.shape == (4, 3, 64, 64) and train.mask.shape == (4, 1, 64, 64)
    assert train.image.dtype == torch.float32 and 0 <= train.image.min() and train.image.max() <= 1
    assert set(train.mask.unique().tolist()) <= {0.0, 1.0} and train.mask_full is None
    val = list(module.val_dataloader())
    assert sum(len(b.name) for b in val) == 12
    first = val[0]
    assert [tuple(m.shape) for m in first.mask_full] == [data[i][1].shape for i in range(4)]
    with pytest.raises(ValueError, match="no 'test' sources"):
        module.test_dataloader()
    assert isinstance(module.dataset("val"), ForgeryDataset)


def test_training_batches_keep_their_size_when_items_are_bad():
    module = ForgeryDataModule(train=Flaky(), image_size=32, batch_size=3, num_workers=0)
    batches = list(module.train_dataloader())
    assert len(batches) == 3 and all(len(b.name) == 3 for b in batches)
    assert sum(b.skipped for b in batches) >= 3
    assert not {"img_0", "img_3", "img_6"} & {n for b in batches for n in b.name}


def test_val_split_holds_distinct_items_out_of_training_with_every_repeat(tmp_path):
    from focal_pl.data.sources import FolderPairs

    images = pairs_folder(tmp_path / "a", 10)
    module = ForgeryDataModule(train=[FolderPairs(str(images), repeat=3), SyntheticForgeries(20, 32, seed=2)],
                               val_split=6, image_size=32, num_workers=0)
    train, val = module.dataset("train"), module.dataset("val")
    val_names = {val.data[i][2]["name"] for i in range(len(val))}
    train_names = {train.data[i][2]["name"] for i in range(len(train))}
    assert len(val) == 6 and not val_names & train_names  # never trained on, not even a repeat
    assert len(train) == 10 * 3 + 20 - sum(3 if "im" in Path(n).name else 1 for n in val_names)
    again = ForgeryDataModule(train=[FolderPairs(str(images), repeat=3), SyntheticForgeries(20, 32, seed=2)],
                              val_split=6, image_size=32, num_workers=0).dataset("val")
    assert {again.data[i][2]["name"] for i in range(len(again))} == val_names  # the same on every rank / resume
    with pytest.raises(ValueError, match="val_split"):
        ForgeryDataModule(train=SyntheticForgeries(4, 32), val=SyntheticForgeries(2, 32), val_split=1)
    with pytest.raises(ValueError, match="between 1 and 3"):
        ForgeryDataModule(train=SyntheticForgeries(4, 32), val_split=4)


def test_test_sets_that_overlap_training_data_are_named(tmp_path, caplog):
    import shutil

    from focal_pl.data.sources import FolderPairs

    train_images = pairs_folder(tmp_path / "train", 4)
    test_images = pairs_folder(tmp_path / "test", 3, seed=7)
    shutil.copy(train_images / "im2.png", test_images / "copied.png")  # same bytes, another path
    shutil.copy(train_images.parent / "masks" / "im2.png", test_images.parent / "masks" / "copied.png")
    module = ForgeryDataModule(train=FolderPairs(str(train_images)),
                               test=[FolderPairs(str(test_images)), FolderPairs(str(train_images))],
                               image_size=32, num_workers=0)
    with caplog.at_level("WARNING", logger="focal_pl.data.datamodule"):
        module.setup("test")
    assert f"{test_images / 'copied.png'} is also in the training data: {train_images / 'im2.png'} (same content" \
        in caplog.text
    assert f"{train_images / 'im0.png'} (same path (train))" in caplog.text
    assert "5 test image(s) overlap" in caplog.text  # copied.png and the 4 training images
    caplog.clear()
    with caplog.at_level("WARNING", logger="focal_pl.data.datamodule"):
        ForgeryDataModule(train=FolderPairs(str(train_images)), test=[FolderPairs(str(pairs_folder(
            tmp_path / "clean", 2, seed=9)))], image_size=32, num_workers=0).setup("test")
    assert "overlap" not in caplog.text


def test_augmentation_ranges_are_the_official_codes():
    """main.py of the official code used albumentations 1.x defaults: Downscale 0.25 and GaussNoise
    variance 10-50 on 0-255 pixels; the same ranges in albumentations 2 terms, and the rest as written there."""
    import albumentations as A

    def walk(transform):
        yield transform
        for child in getattr(transform, "transforms", []):
            yield from walk(child)

    found = {type(t).__name__: t for t in walk(Augmentations().pipeline)}
    assert tuple(found["Downscale"].scale_range) == (0.25, 0.25)
    low, high = found["GaussNoise"].std_range
    assert (low * 255) ** 2 == pytest.approx(10) and (high * 255) ** 2 == pytest.approx(50)
    assert tuple(found["ImageCompression"].quality_range) == (50, 95)
    assert tuple(found["RandomScale"].scale_limit) == pytest.approx((-0.5, 0.0))
    assert found["ElasticTransform"].alpha == 120 and found["ElasticTransform"].sigma == pytest.approx(6.0)
    assert {"Blur", "GaussianBlur", "MedianBlur", "MotionBlur", "ISONoise", "RandomBrightnessContrast", "RandomGamma",
            "RandomToneCurve", "Sharpen", "GridDistortion", "HorizontalFlip", "VerticalFlip", "RandomRotate90",
            "Transpose", "PadIfNeeded"} <= set(found)
    assert isinstance(found["PadIfNeeded"], A.PadIfNeeded)
