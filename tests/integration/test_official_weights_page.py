"""docs/official-weights.md followed word by word, on files in the official layouts made here (tiny
models with random values: the real files cannot be downloaded here). Every command of the page runs
in order, as written but for the input size (64 px, the tiny models'), and its Python runs as pasted."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from focal_pl.cli import main
from helpers.docs import blocks, shell_lines
from helpers.official import official_hrnet, official_vit
from helpers.paths import ROOT

PAGE = ROOT / "docs" / "official-weights.md"


def adapted(args: list[str]) -> list[str]:
    """The page's command at the tiny models' input size: the only change made to it."""
    if args[0] == "export":
        return [*args, "--image-size", "64"]
    if args[0] == "predict" and "--weights" not in args:
        return [*args, "--data.image_size", "64"]
    return args


def photo(path, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = (rng.random((h, w, 3)) * 60 + 100).astype(np.uint8)
    image[10:40, 20:60] = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(image).save(path)


@pytest.mark.slow
def test_the_official_weights_page_works_as_written(tmp_path, monkeypatch):
    torch.save(official_vit()[1], tmp_path / "FOCAL_ViT_weights.pth")
    torch.save(official_hrnet()[1], tmp_path / "FOCAL_HRNet_weights.pth")
    (tmp_path / "my_photos").mkdir()
    for i, (h, w) in enumerate([(90, 120), (70, 70), (150, 100)]):
        photo(tmp_path / "my_photos" / f"p{i}.jpg", h, w, i)
    photo(tmp_path / "photo.jpg", 120, 90, 7)
    photo(tmp_path / "big_photo.jpg", 200, 260, 8)
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line) for line in shell_lines(PAGE)]
    assert [c[1] for c in commands] == ["export", "export", "predict", "predict", "predict"]
    for args in commands:
        try:
            code = main(adapted(args[1:]))
        except SystemExit as stop:
            code = stop.code or 0
        assert code == 0, args
    for release in ("focal_vit", "focal_hrnet"):
        assert (tmp_path / f"{release}.pt").is_file() and (tmp_path / f"{release}.md").is_file()
    written = {run: sorted(p.name for p in (tmp_path / "runs" / run).glob("predict_*/*_mask.png"))
               for run in ("focal_vit", "fused")}
    assert written["focal_vit"] == sorted([f"p{i}_mask.png" for i in range(3)] * 2)  # predict_0 and predict_1
    assert written["fused"] == sorted(f"p{i}_mask.png" for i in range(3))
    for name, (h, w) in (("p0", (90, 120)), ("p1", (70, 70))):
        assert Image.open(tmp_path / "runs" / "focal_vit" / "predict_0" / f"{name}_mask.png").size == (w, h)
    namespace: dict = {}
    for code in blocks(PAGE, "python"):
        exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 - the page's own snippets
    found = namespace["found"]  # the last one: big_photo.jpg at native resolution
    assert found.mask.shape == (200, 260) and found.score_map.dtype == np.uint8
    assert 0.0 <= found.image_score <= 1.0
    assert namespace["model"].module.clusterer.algorithm == "cosine_kmeans"
