"""A corpus of bad and awkward inputs: each loads correctly or is skipped with a warning that names
the file and the reason, and the number skipped is reported."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focal_pl.data import decode
from focal_pl.data.batch import collate
from focal_pl.data.datamodule import ForgeryDataset
from focal_pl.data.decode import BadInput, read_image, read_mask
from focal_pl.data.sources import FolderPairs

H, W = 24, 32


def rgb(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def mask255():
    m = np.zeros((H, W), np.uint8)
    m[4:12, 6:20] = 255
    return m


TRUTH = (mask255() > 0).astype(np.uint8)


def jpeg_bytes(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def build_corpus(root: Path) -> dict[str, str]:
    """Writes images/ + masks/ and returns {stem: 'ok' or the expected reason fragment}."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    expect = {}

    def add(stem, image_bytes_or_array, suffix=".png", mask=mask255(), outcome="ok"):
        path = images / f"{stem}{suffix}"
        if isinstance(image_bytes_or_array, bytes):
            path.write_bytes(image_bytes_or_array)
        else:
            Image.fromarray(image_bytes_or_array).save(path)
        if mask is not None:
            Image.fromarray(mask).save(masks / f"{stem}.png")
        expect[stem] = outcome

    add("plain", rgb())
    add("truncated", jpeg_bytes(rgb(1))[:200], ".jpg", outcome="corrupt or truncated")
    add("zero_bytes", b"", ".jpg", outcome="empty file")
    add("not_an_image", b"this is a text file, not a picture\n" * 20, ".jpg", outcome="not an image")
    cmyk = io.BytesIO()
    Image.fromarray(rgb(2)).convert("CMYK").save(cmyk, format="JPEG", quality=95)
    add("cmyk", cmyk.getvalue(), ".jpg")
    add("grayscale", rgb(3)[..., 0])
    sixteen = io.BytesIO()
    Image.fromarray((rgb(4)[..., 0].astype(np.uint16) * 257)).save(sixteen, format="PNG")
    add("sixteen_bit", sixteen.getvalue())
    add("rgba", np.dstack([rgb(5), np.full((H, W), 128, np.uint8)]))
    palette = io.BytesIO()
    Image.fromarray(rgb(14)).quantize(colors=16).save(palette, format="PNG")  # mode P, as GIF-era PNGs are
    add("palette", palette.getvalue())
    rotated = Image.fromarray(rgb(6)).transpose(Image.Transpose.ROTATE_90)  # stored W x H
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the upright photo is H x W, as its mask
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    add("exif_rotated", buffer.getvalue(), ".jpg")
    big_mask = np.zeros((2 * H, 2 * W), np.uint8)
    big_mask[8:24, 12:40] = 255
    add("mask_other_size", rgb(7), mask=big_mask)
    soft = mask255().astype(np.float32)
    soft[4, 6:20] = 100  # anti-aliased edge: under half-way, pristine
    add("mask_antialiased", rgb(8), mask=soft.astype(np.uint8))
    add("mask_rgb", rgb(9), mask=np.dstack([mask255()] * 3))
    add("mask_zero_one", rgb(10), mask=(mask255() > 0).astype(np.uint8))
    add("missing_mask", rgb(11), mask=None, outcome="authentic")
    add("bomb", rgb(12), outcome="pixel limit")
    add("name with spaces é ünïcode", rgb(13))
    return expect


def test_corpus_loads_or_is_skipped_with_a_named_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "MAX_PIXELS", 4 * H * W + 1)  # a small "bomb" needs a small limit ...
    expect = build_corpus(tmp_path)
    bomb = tmp_path / "images" / "bomb.png"
    Image.fromarray(np.zeros((6 * H, W, 3), np.uint8)).save(bomb)  # ... and 6x the pixels
    Image.fromarray(np.zeros((6 * H, W), np.uint8)).save(tmp_path / "masks" / "bomb.png")
    source = FolderPairs(str(tmp_path / "images"), include_authentic=True)
    dataset = ForgeryDataset([source], image_size=16, keep_full_mask=True)
    assert len(dataset) == len(expect) >= 13
    items = [dataset[i] for i in range(len(dataset))]
    batch = collate(items)
    assert len(batch.problems) == batch.skipped
    skipped = [stem for stem, outcome in expect.items() if outcome not in ("ok", "authentic")]
    assert batch.skipped == len(skipped) == 4
    loaded = {Path(name).stem: i for i, name in enumerate(batch.name)}
    for stem, outcome in expect.items():
        if outcome in ("ok", "authentic"):
            full = batch.mask_full[loaded[stem]].numpy()
            expected = TRUTH.copy() if outcome == "ok" else np.zeros_like(TRUTH)
            if stem == "mask_antialiased":
                expected[4] = 0  # its top edge is 100/255: less than half forged
            assert full.shape == (H, W), stem
            assert np.array_equal(full, expected), stem
        else:
            line = next(f"{where}: {reason}" for where, reason in batch.problems if f"{stem}." in where)
            assert str(tmp_path / "images") in line and outcome in line, line


def test_decoded_pixels_are_right_for_the_awkward_modes(tmp_path):
    corpus = build_corpus(tmp_path)
    assert corpus
    images = tmp_path / "images"
    gray = read_image(images / "grayscale.png")
    assert gray.shape == (H, W, 3) and np.array_equal(gray[..., 0], rgb(3)[..., 0])
    assert np.array_equal(read_image(images / "sixteen_bit.png")[..., 0], rgb(4)[..., 0])
    assert np.array_equal(read_image(images / "rgba.png"), rgb(5))
    palette = Image.open(images / "palette.png")
    assert palette.mode == "P"
    assert np.array_equal(read_image(images / "palette.png"), np.asarray(palette.convert("RGB")))
    cmyk = read_image(images / "cmyk.jpg").astype(int)
    assert np.abs(cmyk - rgb(2)).mean() < 20  # CMYK JPEG converted to RGB
    upright = read_image(images / "exif_rotated.jpg", upright=True)
    assert upright.shape == (H, W, 3)
    assert np.array_equal(read_mask(tmp_path / "masks" / "mask_zero_one.png"), TRUTH)
    assert np.array_equal(read_mask(tmp_path / "masks" / "mask_rgb.png"), TRUTH)
    assert np.array_equal(read_mask(tmp_path / "masks" / "mask_antialiased.png")[5:], TRUTH[5:])
    with pytest.raises(BadInput, match="zero_bytes.jpg: empty file"):
        read_image(images / "zero_bytes.jpg")
    with pytest.raises(BadInput, match="nowhere.png: file does not exist"):
        read_image(images / "nowhere.png")
