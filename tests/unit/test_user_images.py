"""Photos as users have them: EXIF-rotated phone JPEGs shown upright wherever an image has no mask
(predict, localize, ImageFolder, PristineFolder) and left as stored where a mask was drawn on it;
gray, RGBA, 16-bit and CMYK files; images too small for the model said once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focal_pl.cli.lightning import run_lightning
from focal_pl.data.sources import FolderPairs, ImageFolder, PristineFolder
from focal_pl.release import Localization, ReleasedModel
from helpers.paths import tiny_args

EXIF_ORIENTATION = 0x0112


def phone_photo(path: Path, stored=(512, 300), orientation: int = 6) -> tuple[int, int]:
    """A JPEG stored ``stored`` (width x height) whose EXIF says to turn it (6: 90 degrees clockwise,
    so it is shown 300 x 512); returns the shown size as (height, width)."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (stored[1], stored[0], 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif.tobytes(), quality=92)
    shown = (stored[0], stored[1]) if orientation in (5, 6, 7, 8) else (stored[1], stored[0])
    return shown


def model() -> ReleasedModel:
    """An (untrained) tiny model as a release: the sizes and orientations are what is checked."""
    spec = {"class_path": "focal_pl.module.FocalModule", "init_args": {
        "extractor": {"class_path": "focal_pl.extractors.ForensicCNN", "init_args": {"width": 8, "depth": 4,
                                                                                     "out_dim": 8, "stride": 4}},
        "clusterer": {"class_path": "focal_pl.clustering.Clusterer", "init_args": {"algorithm": "kmeans"}}}}
    from focal_pl.release import instantiate

    return ReleasedModel({"model": spec, "weights": instantiate(spec).state_dict(), "image_size": 64}, "tiny.pt")


def test_a_phone_photo_is_localized_and_read_as_it_is_shown(tmp_path):
    shown = phone_photo(tmp_path / "phone.jpg")
    assert shown == (512, 300)
    found = model().localize(tmp_path / "phone.jpg")
    assert isinstance(found, Localization) and found.mask.shape == shown and found.score_map.shape == shown
    assert found.mask.dtype == bool and 0.0 <= found.mask.mean() <= 1.0  # numpy: mean() works
    mask, score, share = found  # it unpacks as the tuple it replaced
    assert share == pytest.approx(found.mask.mean())
    with Image.open(tmp_path / "phone.jpg") as pil:  # a PIL image with its EXIF, too
        assert model().localize(pil).mask.shape == shown
    image, _, _ = ImageFolder(str(tmp_path)).load(0)
    assert image.shape[:2] == shown
    pristine, truth, _ = PristineFolder(str(tmp_path), count=None).load(0)
    assert pristine.shape[:2] == shown and not truth.any()


def test_an_image_with_a_mask_keeps_its_stored_pixels(tmp_path):
    phone_photo(tmp_path / "set" / "images" / "a.jpg")  # stored 512 wide x 300 high
    mask = np.zeros((300, 512), np.uint8)
    mask[100:200, 50:150] = 255
    (tmp_path / "set" / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "set" / "masks" / "a.png")
    image, truth, _ = FolderPairs(str(tmp_path / "set" / "images")).load(0)
    assert image.shape[:2] == truth.shape == (300, 512)  # as stored: the mask was drawn on these pixels
    assert truth[150, 100] == 1 and truth[10, 10] == 0


def test_predict_writes_overlays_the_way_the_photo_is_shown(tmp_path):
    shown = phone_photo(tmp_path / "photos" / "phone.jpg")
    data = json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder", "init_args": {"root": str(tmp_path / "photos")}}])
    cli = run_lightning(tiny_args("predict", tmp_path / "runs", "--run.allow_untrained", "true", "--data.predict", data))
    folder = Path(cli.trainer.log_dir)
    for suffix in ("mask", "overlay", "score"):
        with Image.open(folder / f"phone_{suffix}.png") as written:
            assert (written.height, written.width) == shown, suffix


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "CMYK", "P"])
def test_gray_rgba_16_bit_cmyk_and_palette_files_are_localized(mode, tmp_path):
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray((rng.integers(0, 65535, (90, 120))).astype(np.uint16))
    elif mode == "P":
        image = rgb.convert("P")
    else:
        image = rgb.convert(mode)
    path = tmp_path / ("photo.tif" if mode in ("CMYK", "I;16") else "photo.png")
    image.save(path)
    found = model().localize(path)
    assert found.mask.shape == (90, 120) and found.score_map.dtype == np.uint8


def test_a_uint16_array_is_scaled_not_clipped():
    from focal_pl.release import as_rgb_array

    array = np.full((8, 8, 3), 65535, np.uint16)
    assert as_rgb_array(array).max() == 255 and as_rgb_array(array // 2).max() == 127  # 32767 / 257


def test_a_tiny_image_is_warned_about_once_naming_it(tmp_path, caplog):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "tiny.png")
    with caplog.at_level(logging.WARNING, logger="focal_pl.release"):
        model().localize(tmp_path / "tiny.png")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"{tmp_path / 'tiny.png'}: 16 x 16 pixels is below the 64 px")
