"""Native readers: small fixtures in each public layout, made here, and the real samples in ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.paths import SHARED_DATA
from focal_pl.data.sources import (
    CASIA,
    IMD2020,
    MISD,
    NIST16,
    BenCoJson,
    CatNetList,
    Columbia,
    Coverage,
    FaceForensics,
    FocalNpy,
    FolderPairs,
)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def photo(h=24, w=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def box_mask(h=24, w=32, value=255) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[4:12, 6:20] = value
    return mask


TRUTH = box_mask(value=1)


def check(source, expected_count: int, forged_truth=TRUTH):
    assert len(source) == expected_count
    forged = 0
    for i in range(len(source)):
        image, mask, meta = source[i]
        assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
        assert mask.dtype == np.uint8 and mask.shape == (24, 32) and set(np.unique(mask)) <= {0, 1}
        if meta["authentic"]:
            assert not mask.any()
        else:
            forged += 1
            assert np.array_equal(mask, forged_truth), meta["name"]
    return forged


def test_casia_v2_layout(tmp_path):
    root = tmp_path / "CASIA2"
    save(root / "Tp" / "Tp_D_CRN_S_N_ani00001_ani00002_10001.tif", photo())
    save(root / "Tp" / "Tp_S_NNN_S_N_pla00001_pla00001_10002.jpg", photo(), quality=95)
    save(root / "Tp" / "Tp_D_NRD_S_N_cha10002_cha10001_20094.jpg", photo(), quality=95)
    save(root / "Au" / "Au_ani_00001.jpg", photo(), quality=95)
    save(root / "Au" / "Au_sec_00002.bmp", photo())
    gt = root / "CASIA 2 Groundtruth"
    save(gt / "Tp_D_CRN_S_N_ani00001_ani00002_10001_gt.png", box_mask())
    save(gt / "Tp_S_NNN_S_N_pla00001_pla00001_10002_gt.png", np.dstack([box_mask()] * 3))  # RGB mask
    save(gt / "Tp_D_NRD_S_N_cha10002_cha10001_20094_gt3.png", box_mask())  # v2's misnamed mask
    assert check(CASIA(str(root)), 3) == 3
    assert check(CASIA(str(root), include_authentic=True), 5) == 3
    assert len(CASIA(str(root), repeat=40)) == 120


def test_casia_v1_real_samples():
    root = SHARED_DATA / "real" / "CASIA1_samples"
    if not root.is_dir():
        pytest.skip("../shared/data/real is not here")
    source = CASIA(str(root), include_authentic=True)
    assert len(source) == 72
    forged = [source[i] for i in range(len(source)) if "authentic" not in source.describe(i)]
    assert len(forged) == 36
    for image, mask, meta in forged:
        assert image.shape[:2] == mask.shape and 0.0 < mask.mean() < 0.9, meta["name"]
    image, mask, meta = source[[i for i in range(72) if "authentic" in source.describe(i)][0]]
    assert meta["authentic"] and not mask.any()


def test_casia_v2_and_nist16_real_samples():
    real = SHARED_DATA / "real"
    if not real.is_dir():
        pytest.skip("../shared/data/real is not here")
    casia2 = CASIA(str(real / "CASIA2_samples"))
    assert len(casia2) == 17
    for i in range(17):
        image, mask, _ = casia2[i]
        assert image.shape[:2] == mask.shape and mask.any()
    nist = FolderPairs(str(real / "NIST16_sample" / "images"))
    image, mask, _ = nist[0]
    assert image.shape == (2616, 3488, 3) and 0.03 < mask.mean() < 0.08


def test_columbia_edge_masks(tmp_path):
    root = tmp_path / "Columbia" / "4cam_splc" / "4cam_splc"
    save(root / "canong3_canonxt_sub_01.tif", photo())
    edge = np.zeros((24, 32, 3), np.uint8)
    edge[...] = (200, 0, 0)  # camera 1, far from the boundary
    edge[TRUTH.astype(bool)] = (0, 200, 0)  # camera 2: the spliced region
    edge[4, 6:20] = (0, 255, 0)  # near the boundary, still camera 2
    edge[3, 6:20] = (255, 0, 0)
    save(root / "edgemask" / "canong3_canonxt_sub_01_edgemask.jpg", edge, quality=90)
    save(tmp_path / "Columbia" / "4cam_auth" / "canonxt_29_sub_07.tif", photo())
    assert check(Columbia(str(tmp_path / "Columbia"), include_authentic=True), 2) == 1


def test_coverage_with_a_mask_of_another_size(tmp_path):
    root = tmp_path / "COVERAGE"
    for n in (1, 2):
        save(root / "image" / f"{n}t.tif", photo(seed=n))
        save(root / "image" / f"{n}.tif", photo(seed=10 + n))
        save(root / "mask" / f"{n}copy.tif", np.zeros((24, 32), np.uint8))
    save(root / "mask" / "1forged.tif", box_mask())
    big = np.zeros((48, 64), np.uint8)
    big[8:24, 12:40] = 255  # drawn at twice the size: resized (nearest) to the image
    save(root / "mask" / "2forged.tif", big)
    assert check(Coverage(str(root), include_authentic=True), 4) == 2


def test_nist16_reference_csv_and_inverted_masks(tmp_path):
    root = tmp_path / "NC2016_Test0613"
    save(root / "probe" / "NC2016_0001.jpg", photo(), quality=95)
    save(root / "probe" / "NC2016_0002.jpg", photo(seed=2), quality=95)
    save(root / "reference" / "manipulation" / "mask" / "NC2016_9001.png", 255 - box_mask())  # black = manipulated
    header = ("TaskID|ProbeFileID|ProbeFileName|ProbeMaskFileName|DonorFileID|DonorFileName|"
              "DonorMaskFileName|IsTarget|ProbePostProcessed")
    rows = ["Manipulation|NC2016_0001|probe/NC2016_0001.jpg|reference/manipulation/mask/NC2016_9001.png||||Y|none",
            "Manipulation|NC2016_0002|probe/NC2016_0002.jpg|||||N|none"]
    csv = root / "reference" / "manipulation" / "NC2016-manipulation-ref.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    assert check(NIST16(str(root), include_authentic=True), 2) == 1


def test_imd2020_layout(tmp_path):
    root = tmp_path / "IMD2020"
    save(root / "1b8r7b" / "1b8r7b_orig.jpg", photo(), quality=95)
    save(root / "1b8r7b" / "c94scmh_0.jpg", photo(seed=3), quality=95)
    save(root / "1b8r7b" / "c94scmh_0_mask.png", box_mask())
    save(root / "z14" / "00030_fake.png", photo(seed=4))
    save(root / "z14" / "00030_fake_mask.png", box_mask())
    save(root / "z14" / "00030_orig.jpg", photo(seed=5), quality=95)
    assert check(IMD2020(str(root)), 2) == 2
    assert len(IMD2020(str(root), include_authentic=True)) == 4


def test_misd_unites_one_mask_per_spliced_object(tmp_path):
    root = tmp_path / "MISD"
    save(root / "Sp" / "Sp_D_ani_001.png", photo())
    save(root / "Au" / "Au_ani_0001.jpg", photo(seed=1), quality=95)
    left, right = np.zeros((24, 32), np.uint8), np.zeros((24, 32), np.uint8)
    left[4:12, 6:13] = 255
    right[4:12, 13:20] = 255
    save(root / "Ground Truth Masks" / "Sp_D_ani_001" / "masks" / "object1.png", left)
    save(root / "Ground Truth Masks" / "Sp_D_ani_001" / "masks" / "object2.png", right)
    save(root / "Ground Truth Masks" / "Sp_D_ani_001" / "images" / "Sp_D_ani_001.png", photo())
    assert check(MISD(str(root), include_authentic=True), 2) == 1


def test_ffpp_frames_and_folder_pairs(tmp_path):
    root = tmp_path / "FFpp"
    for i in range(3):
        save(root / "frames" / "Deepfakes" / f"000_003_{i:04d}.png", photo(seed=i))
        save(root / "masks" / "Deepfakes" / f"000_003_{i:04d}.png", box_mask())
    assert check(FaceForensics(str(root)), 3) == 3
    pairs = tmp_path / "mine"
    save(pairs / "images" / "a.jpg", photo(), quality=95)
    save(pairs / "masks" / "a_mask.png", box_mask())
    save(pairs / "images" / "b.png", photo(seed=1))
    assert check(FolderPairs(str(pairs / "images"), include_authentic=True), 2) == 1
    with pytest.raises(FileNotFoundError, match="nothing does not exist"):
        FolderPairs(str(pairs / "images"), masks=str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="folder: no images found .*empty"):
        len(FolderPairs(str(tmp_path / "empty"), masks=str(pairs / "masks")))


def test_list_formats_catnet_benco_focal(tmp_path):
    data = tmp_path / "data"
    save(data / "sp_images" / "79_000000505269.jpg_000000562830.jpg.jpg", photo(), quality=95)
    save(data / "sp_masks" / "79_000000505269.png_000000562830.png.png", box_mask(value=1))  # 0/1 mask
    save(data / "Au" / "Au_x.jpg", photo(seed=9), quality=95)
    catnet = tmp_path / "sp_COCO_list.txt"
    catnet.write_text(
        "sp_images/79_000000505269.jpg_000000562830.jpg.jpg,sp_masks/79_000000505269.png_000000562830.png.png\n"
        "Au/Au_x.jpg,None,Au/Au_x.jpg\n"
    )
    assert check(CatNetList(str(catnet), root=str(data)), 2) == 1
    benco = tmp_path / "benco.json"
    benco.write_text(json.dumps([
        [str(data / "sp_images" / "79_000000505269.jpg_000000562830.jpg.jpg"),
         str(data / "sp_masks" / "79_000000505269.png_000000562830.png.png")],
        [str(data / "Au" / "Au_x.jpg"), "Negative"],
    ]))
    assert check(BenCoJson(str(benco)), 2) == 1
    npy = data / "flist.npy"
    np.save(npy, np.array([["sp_images/79_000000505269.jpg_000000562830.jpg.jpg",
                            "sp_masks/79_000000505269.png_000000562830.png.png"],
                           ["Au/Au_x.jpg", ""]]))
    assert check(FocalNpy(str(npy)), 2) == 1
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        len(BenCoJson(str(tmp_path / "bad.json")))


def test_a_mix_with_repeat_factors_is_one_yaml_list(tmp_path):
    from jsonargparse import ArgumentParser

    from focal_pl.data import ForgeryDataModule

    casia, imd = tmp_path / "CASIA2", tmp_path / "IMD2020"
    save(casia / "Tp" / "Tp_D_CRN_S_N_ani00001_ani00002_10001.png", photo())
    save(casia / "gt" / "Tp_D_CRN_S_N_ani00001_ani00002_10001_gt.png", box_mask())
    save(imd / "abc" / "x_0.png", photo(seed=1))
    save(imd / "abc" / "x_0_mask.png", box_mask())
    config = f"""
image_size: 32
num_workers: 0
train:
  - class_path: focal_pl.data.sources.CASIA
    init_args: {{root: {casia}, repeat: 40}}
  - class_path: focal_pl.data.sources.IMD2020
    init_args: {{root: {imd}, repeat: 20}}
"""
    parser = ArgumentParser()
    parser.add_class_arguments(ForgeryDataModule, "data")
    (tmp_path / "data.yaml").write_text(config)
    parsed = parser.parse_args(["--data", str(tmp_path / "data.yaml")])
    module = parser.instantiate_classes(parsed).data
    dataset = module.dataset("train")
    assert len(dataset) == 60
    names = {Path(dataset[i].name).parent.name for i in range(len(dataset))}
    assert names == {"Tp", "abc"}


def test_folder_pairs_take_the_sets_root_and_want_masks(tmp_path):
    root = tmp_path / "mine"
    save(root / "images" / "a.jpg", photo(), quality=95)
    save(root / "images" / "b.png", photo(seed=1))
    save(root / "masks" / "a_mask.png", box_mask())
    from_root = FolderPairs(str(root), include_authentic=True)
    assert from_root.images == root / "images" and from_root.masks == root / "masks"
    assert check(from_root, 2) == 1  # the mask is a mask, not an authentic image
    inside = tmp_path / "inside"  # masks/ kept inside the images folder, named explicitly
    save(inside / "x.png", photo())
    save(inside / "masks" / "x.png", box_mask())
    assert check(FolderPairs(str(inside), masks=str(inside / "masks"), include_authentic=True), 1) == 1
    save(tmp_path / "bare" / "images" / "c.png", photo())
    with pytest.raises(FileNotFoundError, match="no masks folder .* images/ and masks/"):
        len(FolderPairs(str(tmp_path / "bare"), include_authentic=True))


def test_coverage_counts_items_with_resized_masks_as_forged(tmp_path, capsys):
    from focal_pl.cli.data import check as check_sources

    root = tmp_path / "COVERAGE"
    for n in (1, 2, 3):
        save(root / "image" / f"{n}t.tif", photo(seed=n))
        save(root / "image" / f"{n}.tif", photo(seed=10 + n))
        save(root / "mask" / f"{n}forged.tif", box_mask() if n == 1 else np.kron(box_mask(), np.ones((2, 2), np.uint8)))
    report = check_sources([Coverage(str(root), include_authentic=True)])["sources"][0]
    assert (report["items"], report["forged"], report["authentic"], len(report["notes"])) == (6, 3, 3, 2)


def test_pristine_folder_takes_visions_natural_photos_only_when_asked(tmp_path):
    """VISION's layout (``<device>/images/Nat|Flat|NatFBH|NatWA/``, ``videos/``): ``subfolders: [Nat,
    Flat]`` draws from Nat/ and Flat/ alone, as the paper's Table VIII; without it every image counts."""
    from focal_pl.data.sources import PristineFolder

    for device in ("D01_Samsung", "D02_Apple"):
        for kind in ("Nat", "Flat", "NatFBH", "NatWA"):
            for i in range(2):
                save(tmp_path / device / "images" / kind / f"{device}_{kind}_{i}.jpg", photo(seed=i))
        save(tmp_path / device / "videos" / "Nat" / "frame.jpg", photo())  # a Nat folder under videos/
    natural = PristineFolder(str(tmp_path), count=None, subfolders=["Nat", "Flat"], name="vision")
    names = sorted(Path(e.image).parent.name for e in natural.scan())
    assert names == ["Flat"] * 4 + ["Nat"] * 6  # videos/Nat counts: the rule is the folder's name
    assert len(PristineFolder(str(tmp_path), count=None).scan()) == 4 * 2 * 2 + 2
    assert len(PristineFolder(str(tmp_path), count=5, seed=1, subfolders=["Nat", "Flat"]).scan()) == 5
    with pytest.raises(ValueError, match="no image under .* inside a folder named Natural"):
        PristineFolder(str(tmp_path), count=None, subfolders=["Natural"]).scan()
