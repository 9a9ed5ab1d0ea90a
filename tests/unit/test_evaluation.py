"""focal-pl test / predict: the report's numbers recomputed from the saved masks, robustness,
fusion, the image-level score, degradations, and the prediction page."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, f1_score, jaccard_score, roc_auc_score

from focal_pl.cli.lightning import run_lightning
from focal_pl.clustering.image_score import heterogeneity
from focal_pl.data.degradations import Degradation, robustness_grid
from focal_pl.data.sources import FolderPairs
from focal_pl.evaluation.report import aggregate

from helpers.paths import TINY


def cli(*args, root):
    return run_lightning([args[0], "--config", "demo.yaml", "--config", TINY,
                          "--trainer.logger.init_args.save_dir", str(root), *args[1:]])


def folder_pairs(root: Path, n: int = 5, authentic: int = 3) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n + authentic):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        if i < n:
            mask = np.zeros((60, 80), np.uint8)
            mask[10 : 30 + 3 * i, 20:50] = 255
            Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    return root / "images"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    trained = cli("fit", "--trainer.num_sanity_val_steps", "0", root=root)
    return str(Path(trained.trainer.log_dir) / "checkpoints" / "last.ckpt")


def test_report_numbers_equal_a_recomputation_from_the_saved_masks(checkpoint, tmp_path):
    images = folder_pairs(tmp_path / "data")
    sets = json.dumps([
        {"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {"images": str(images), "include_authentic": True}},
        {"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 6, "size": 64, "authentic_fraction": 0.5, "seed": 4}},
    ])
    run = cli("test", "--ckpt_path", checkpoint, "--data.test", sets, root=tmp_path)
    folder = Path(run.trainer.log_dir)
    report = json.loads((folder / "results.json").read_text())
    assert report["resolution"] == "both" and "macro F1" in report["legend"]["f1"]
    assert {(r["set"], r["resolution"]) for r in report["results"]} == {
        (s, r) for s in ("folder", "synthetic-4") for r in ("grid", "image")}  # both, each labelled
    assert report["paper"] is None  # a ForensicCNN is no row of the paper
    # each set's numbers reach the loggers once, not Lightning's per-loader table under every column
    assert not any(k.startswith("test/folder/") for k in run.trainer.callback_metrics)
    header = (folder / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "test/folder/f1" in header and "test/synthetic-4/f1" in header
    assert "forged class" in (folder / "results.md").read_text()
    truth_of = {}
    source = FolderPairs(str(images), include_authentic=True)
    for i in range(len(source)):
        _, mask, meta = source[i]
        truth_of[meta["name"]] = mask.astype(bool)
    from focal_pl.data import SyntheticForgeries

    synthetic = SyntheticForgeries(6, 64, authentic_fraction=0.5, seed=4)
    for i in range(6):
        _, mask, meta = synthetic[i]
        truth_of[meta["name"]] = mask.astype(bool)
    every = list(csv.DictReader((folder / "per_image.csv").open()))
    assert len(every) == 28
    from focal_pl.evaluation.masks import official_grid_truth

    for row in (r for r in every if r["resolution"] == "grid"):  # the official scoring, on the 16 x 16 grid
        predicted = np.asarray(Image.open(folder / row["mask_file"])) > 0
        truth = official_grid_truth(torch.from_numpy(truth_of[row["name"]]), (16, 16)).numpy()
        assert predicted.shape == (16, 16)
        if truth.any():
            assert float(row["f1"]) == pytest.approx(
                f1_score(truth.ravel(), predicted.ravel(), average="macro", zero_division=1.0), abs=1e-9)
    rows = [r for r in every if r["resolution"] == "image"]
    by_set: dict[str, list] = {}
    for row in rows:
        predicted = np.asarray(Image.open(folder / row["mask_file"])) > 0
        score = np.asarray(Image.open(folder / row["score_file"]))
        truth = truth_of[row["name"]]
        assert predicted.shape == truth.shape == score.shape  # scored at the image's own size
        recomputed = {"forged_share": predicted.mean()}
        if truth.any():
            recomputed.update(
                f1=f1_score(truth.ravel(), predicted.ravel(), average="macro", zero_division=1.0),
                f1_forged=f1_score(truth.ravel(), predicted.ravel(), zero_division=1.0),
                f1_permuted=max(f1_score(truth.ravel(), predicted.ravel(), zero_division=1.0),
                                f1_score(truth.ravel(), ~predicted.ravel(), zero_division=1.0)),
                iou=jaccard_score(truth.ravel(), predicted.ravel(), zero_division=1.0),
                pixel_auc=roc_auc_score(truth.ravel(), score.ravel()),
            )
        for key, value in recomputed.items():
            assert float(row[key]) == pytest.approx(value, abs=1e-9), (row["name"], key)
        by_set.setdefault(row["set"], []).append((truth.any(), predicted, row))
    for entry in (e for e in report["results"] if e["resolution"] == "image"):
        items = by_set[entry["set"]]
        forged = [r for is_forged, _, r in items if is_forged]
        authentic = [p for is_forged, p, _ in items if not is_forged]
        assert entry["forged_images"] == len(forged) and entry["authentic_images"] == len(authentic)
        assert entry["f1"] == pytest.approx(np.mean([float(r["f1"]) for r in forged]))
        assert entry["iou"] == pytest.approx(np.mean([float(r["iou"]) for r in forged]))
        assert entry["false_alarm_rate"] == pytest.approx(np.mean([p.any() for p in authentic]))
        # accuracy and AUC from one score: forged when the image-level score exceeds the threshold
        decisions = [(float(r["image_score"]) > report["image_threshold"]) == f for f, _, r in items]
        assert entry["image_acc"] == pytest.approx(np.mean(decisions))
        scores = [float(r["image_score"]) for _, _, r in items]
        assert entry["image_auc"] == pytest.approx(roc_auc_score([f for f, _, _ in items], scores))
        assert entry["image_bacc"] == pytest.approx(balanced_accuracy_score(
            [f for f, _, _ in items], np.asarray(scores) > report["image_threshold"]))
    # the peers' columns, recomputed from the saved masks and score maps by the peers' own formulas
    from helpers.peer_formulas import trufor_f1_best, trufor_f1_fixed

    for name, items in by_set.items():
        forged = [(p, r) for is_forged, p, r in items if is_forged]
        for predicted, row in forged:
            truth, score = truth_of[row["name"]], np.asarray(Image.open(folder / row["score_file"]))
            assert float(row["f1_best_trufor"]) == pytest.approx(trufor_f1_best(score, truth), abs=1e-9)
            expected = trufor_f1_fixed(predicted, truth)
            assert (np.isnan(expected) and row["f1_fixed_trufor"] == "nan") or float(row["f1_fixed_trufor"]) == \
                pytest.approx(expected, abs=1e-9)
        entry = next(e for e in report["results"] if e["set"] == name and e["resolution"] == "image")
        truth = np.concatenate([truth_of[r["name"]].ravel() for _, r in forged])
        pooled = np.concatenate([p.ravel() for p, _ in forged])
        assert entry["f1_pooled"] == pytest.approx(f1_score(truth, pooled), abs=1e-9)
        assert entry["iou_pooled"] == pytest.approx(jaccard_score(truth, pooled), abs=1e-9)
    # the plots of every set, and one page that shows them with the tables and the picture strips
    page = (folder / "index.html").read_text()
    for name in ("folder", "synthetic-4"):
        for plot in (f"curves/{name}.png", f"curves/{name}_f1.png"):
            assert Image.open(folder / plot).size[0] > 400 and f"src='{plot}'" in page
        assert f"src='pictures/{name}/" in page
    assert "<th>F1 best (TruFor)</th>" in page and "F1 (FOCAL, macro)" in page


def test_grid_resolution_scores_on_the_feature_grid(checkpoint, tmp_path):
    images = folder_pairs(tmp_path / "data", n=3, authentic=0)
    sets = json.dumps([{"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {"images": str(images)}}])
    run = cli("test", "--ckpt_path", checkpoint, "--data.test", sets, "--testing.resolution", "grid", root=tmp_path)
    folder = Path(run.trainer.log_dir)
    row = next(csv.DictReader((folder / "per_image.csv").open()))
    assert np.asarray(Image.open(folder / row["mask_file"])).shape == (16, 16)  # 64 px input / 4
    assert "feature grid" in (folder / "results.md").read_text()


def test_robustness_runs_each_set_under_each_degradation_and_plots(checkpoint, tmp_path):
    sets = json.dumps([{"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 4, "size": 64, "seed": 8}}])
    run = cli("test", "--ckpt_path", checkpoint, "--data.test", sets,
              "--data.test_degradations", "[none, jpeg:50, resize:0.5, osn:48]", root=tmp_path)
    folder = Path(run.trainer.log_dir)
    table = json.loads((folder / "results.json").read_text())["results"]
    assert [e["degradation"] for e in table if e["resolution"] == "image"] == ["none", "jpeg:50", "resize:0.5", "osn:48"]
    rows = [r for r in csv.DictReader((folder / "per_image.csv").open()) if r["resolution"] == "image"]
    halves = [np.asarray(Image.open(folder / r["mask_file"])).shape for r in rows if r["degradation"] == "resize:0.5"]
    full = [np.asarray(Image.open(folder / r["mask_file"])).shape for r in rows if r["degradation"] == "none"]
    assert all(h == (round(f[0] / 2), round(f[1] / 2)) for h, f in zip(halves, full))
    assert all(max(np.asarray(Image.open(folder / r["mask_file"])).shape) <= 48 for r in rows
               if r["degradation"] == "osn:48")
    assert {p.name for p in folder.glob("robustness_*.png")} == {
        "robustness_f1.png", "robustness_f1_forged.png", "robustness_iou.png", "robustness_pixel_auc.png"}


def test_feature_fusion_of_two_checkpoints_without_retraining(checkpoint, tmp_path):
    sets = json.dumps([{"class_path": "focal_pl.data.SyntheticForgeries", "init_args": {"length": 3, "size": 64, "seed": 9}}])
    fused = json.dumps({"class_path": "focal_pl.extractors.FusedExtractor",
                        "init_args": {"checkpoints": [checkpoint, checkpoint], "resize": "nearest"}})
    for fusion in ("features", "union", "intersection"):
        run = cli("test", "--model.init_args.extractor", fused, "--data.test", sets,
                  "--model.init_args.clusterer.init_args.fusion", fusion, root=tmp_path)
        assert run.model.extractor.member_channels == [16, 16]
        table = json.loads((Path(run.trainer.log_dir) / "results.json").read_text())["results"]
        assert table[0]["forged_images"] == 3 and 0 <= table[0]["f1"] <= 1
        assert json.loads((Path(run.trainer.log_dir) / "results.json").read_text())["paper"] == {
            "table": "table_2_pixel", "row": "FOCAL (Fusion)"}  # the paper's fusion row stands beside it


def test_predict_writes_masks_overlays_scores_and_one_html_page(checkpoint, tmp_path):
    images = folder_pairs(tmp_path / "data", n=2, authentic=1)
    for source, truth in (("ImageFolder", False), ("FolderPairs", True)):
        args = {"root": str(images)} if source == "ImageFolder" else {"images": str(images), "include_authentic": True}
        data = json.dumps([{"class_path": f"focal_pl.data.sources.{source}", "init_args": args}])
        run = cli("predict", "--ckpt_path", checkpoint, "--data.predict", data, root=tmp_path)
        folder = Path(run.trainer.log_dir)
        page = (folder / "index.html").read_text()
        rows = list(csv.DictReader((folder / "scores.csv").open()))
        assert len(rows) == 3
        for row in rows:
            overlay = np.asarray(Image.open(folder / row["overlay_file"]))
            assert overlay.shape == (60, 80, 3)  # the image's own size
            assert row["overlay_file"] in page and row["mask_file"] in page
            assert 0 <= float(row["image_score"]) <= 1
            assert ("f1" in row) == truth  # no metric columns without a single ground truth
            if truth:
                assert 0 <= float(row["f1"]) <= 1
        assert ("forged F1" in page) == truth
        assert "http" not in page.replace("http-equiv", "")  # nothing fetched from a network


def test_heterogeneity_is_higher_for_forged_like_maps():
    g = torch.Generator().manual_seed(0)
    base, other = torch.randn(2, 32, generator=g)
    authentic = base[:, None, None] + 0.4 * torch.randn(32, 32, 32, generator=g)
    forged = authentic.clone()
    forged[:, 4:14, 6:16] = other[:, None, None] + 0.4 * torch.randn(32, 10, 10, generator=g)
    assert heterogeneity(forged) > 3 * heterogeneity(authentic) and heterogeneity(forged) > 0.05


def test_degradations_parse_and_act():
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[5:15, 10:30] = 1
    jpeg, same = Degradation.parse("jpeg:50")(image, mask)
    assert jpeg.shape == image.shape and not np.array_equal(jpeg, image) and same is mask
    small, small_mask = Degradation.parse("resize:0.5")(image, mask)
    assert small.shape == (20, 30, 3) and small_mask.shape == (20, 30) and small_mask.sum() == 50
    a, _ = Degradation.parse("noise:7")(image, mask, "x.png")
    b, _ = Degradation.parse("noise:7")(image, mask, "x.png")
    assert np.array_equal(a, b) and not np.array_equal(a, image)
    osn, osn_mask = Degradation.parse("osn:30")(image, mask)
    assert max(osn.shape[:2]) == 30 and osn_mask.shape == osn.shape[:2]
    assert Degradation.parse("blur:7").label == "blur:7"
    grid = robustness_grid()
    assert grid[0] == "none" and "jpeg:50" in grid and "noise:23" in grid and "osn:1024" in grid
    with pytest.raises(ValueError, match="unknown degradation"):
        Degradation.parse("sharpen:2")
    with pytest.raises(ValueError, match="needs a value"):
        Degradation.parse("jpeg")


def test_aggregate_handles_sets_without_authentic_images():
    rows = [dict(set="a", degradation="none", truth=True, authentic=False, f1=0.5, f1_forged=0.4,
                 f1_permuted=0.6, iou=0.3, pixel_auc=float("nan"), image_score=0.2, forged_share=0.1)]
    entry = aggregate(rows)[0]
    assert entry["f1"] == 0.5 and math.isnan(entry["pixel_auc"]) and math.isnan(entry["image_auc"])
    assert math.isnan(entry["false_alarm_rate"]) and math.isnan(entry["image_acc"])


def test_write_report_says_no_authentic_images_instead_of_nan(tmp_path):
    from focal_pl.evaluation.report import NO_AUTHENTIC, write_report

    rows = [dict(set="ffpp", degradation="none", name="a", truth=True, authentic=False, f1=0.5, f1_forged=0.4,
                 f1_permuted=0.6, iou=0.3, pixel_auc=0.7, image_score=0.2, forged_share=0.1)]
    write_report(tmp_path, rows, {"resolution": "image", "image_threshold": 0.05})
    table = (tmp_path / "results.md").read_text()
    line = next(t for t in table.splitlines() if t.startswith("| ffpp"))
    assert line.count(NO_AUTHENTIC) == 4 and "nan" not in line
    assert json.loads((tmp_path / "results.json").read_text())["notes"] == {"ffpp": NO_AUTHENTIC}


class FixedMasker:
    """A masker that returns a given grid mask for every map (to test the scoring alone)."""

    def __init__(self, mask):
        self.mask = mask

    def cluster_batch(self, features, splits=None):
        return [(self.mask.clone(), self.mask.float()) for _ in features]


def test_grid_scoring_brings_the_truth_to_the_grid_as_the_official_code_does():
    import cv2

    from focal_pl.data.batch import Batch
    from focal_pl.evaluation.scoring import Scorer

    truth = torch.zeros(100, 140, dtype=torch.bool)
    truth[20:61, 30:97] = True
    tiny = torch.zeros(100, 140, dtype=torch.bool)
    tiny[50:52, 70:72] = True  # a forgery that vanishes on a 16 x 16 grid
    predicted = torch.zeros(16, 16, dtype=torch.bool)
    predicted[3:10, 4:11] = True
    batch = Batch(name=["a", "b"], size=[(100, 140)] * 2, truth=[True, True], mask_full=[truth, tiny])
    scorer = Scorer(FixedMasker(predicted))
    scored = scorer.score(batch, scorer.cluster(torch.zeros(2, 4, 16, 16)), resolution="grid")
    for item in scored:
        scorer.measure(item)
    official = cv2.resize(truth.numpy().astype(np.uint8) * 255, (16, 16), interpolation=cv2.INTER_LINEAR) > 127
    expected = f1_score(official.ravel(), predicted.numpy().ravel(), average="macro")
    assert scored[0].result.f1 == pytest.approx(expected, abs=1e-12)
    assert scored[0].mask.shape == (16, 16)
    vanished = scored[1].result
    assert not vanished.authentic and vanished.truth  # still a forged image, scored as one
    assert vanished.f1_forged == 0.0
    rows = [s.result.row() for s in scored]
    assert aggregate(rows)[0]["forged_images"] == 2


@pytest.mark.slow
def test_validation_test_and_predict_give_the_same_masks(checkpoint, tmp_path):
    """One scoring path: for the same checkpoint and images, the masks test and predict save are
    equal, and validation's F1 is the mean of test's per-image F1, for every fusion mode."""
    images = folder_pairs(tmp_path / "data", n=3, authentic=0)
    source = [{"class_path": "focal_pl.data.sources.FolderPairs", "init_args": {"images": str(images)}}]
    fused = json.dumps({"class_path": "focal_pl.extractors.FusedExtractor",
                        "init_args": {"checkpoints": [checkpoint, checkpoint]}})
    for fusion in ("features", "union"):
        common = ["--model.init_args.extractor", fused, "--model.init_args.clusterer.init_args.fusion", fusion]
        tested = cli("test", *common, "--data.test", json.dumps(source), root=tmp_path / fusion)
        predicted = cli("predict", *common, "--data.predict", json.dumps(source), root=tmp_path / fusion)
        validated = cli("validate", *common, "--data.val", json.dumps(source), root=tmp_path / fusion)
        test_dir = Path(tested.trainer.log_dir)
        test_rows = {r["name"]: r for r in csv.DictReader((test_dir / "per_image.csv").open())}
        predict_dir = Path(predicted.trainer.log_dir)
        for row in csv.DictReader((predict_dir / "scores.csv").open()):
            a = np.asarray(Image.open(test_dir / test_rows[row["name"]]["mask_file"]))
            b = np.asarray(Image.open(predict_dir / row["mask_file"]))
            assert np.array_equal(a, b), (fusion, row["name"])
        mean_f1 = np.mean([float(r["f1"]) for r in test_rows.values()])
        assert validated.trainer.callback_metrics["val/f1"].item() == pytest.approx(mean_f1, abs=1e-6)


def test_image_accuracy_needs_a_threshold_for_the_heterogeneity_score(tmp_path):
    from focal_pl.evaluation.report import write_report

    rows = [dict(set="s", degradation="none", name=str(i), truth=True, authentic=i % 2 == 0, f1=0.5,
                 f1_forged=0.4, f1_permuted=0.6, iou=0.3, pixel_auc=0.7, image_score=0.1 * i,
                 forged_share=0.1 * (i % 2)) for i in range(6)]
    assert math.isnan(aggregate(rows, None)[0]["image_acc"])  # no threshold: no accuracy, only the AUC
    assert aggregate(rows, None)[0]["image_auc"] == pytest.approx(roc_auc_score([i % 2 == 1 for i in range(6)],
                                                                                [0.1 * i for i in range(6)]))
    assert aggregate(rows, 0.25)[0]["image_acc"] == pytest.approx(4 / 6)
    write_report(tmp_path, rows, {"resolution": "image", "image_score": "heterogeneity", "image_threshold": None})
    assert "no accuracy without testing.image_threshold" in (tmp_path / "results.md").read_text()


def test_a_test_table_stands_beside_the_papers_figures(tmp_path):
    """A ViT on CASIA and NIST16 (and a set the paper has not): the paper's F1 / IoU of FOCAL (ViT)
    and our difference on the undegraded rows of the paper's sets, nothing elsewhere."""
    from focal_pl.evaluation import paper
    from focal_pl.evaluation.report import beside_paper, write_report

    def row(name, f1, iou, resolution="grid", degradation="none"):
        return {"set": name, "degradation": degradation, "resolution": resolution, "name": f"{name}.png",
                "truth": True, "authentic": False, "f1": f1, "f1_forged": f1, "f1_permuted": f1, "iou": iou,
                "pixel_auc": 0.9, "image_score": 0.5, "forged_share": 0.2}

    rows = [row("casia", 0.80, 0.70), row("nist16", 0.50, 0.30), row("folder", 0.6, 0.5),
            row("casia", 0.60, 0.40, degradation="jpeg:70")]
    table = aggregate(rows)
    beside_paper(table, paper.MAIN_TABLE, "FOCAL (ViT)")
    by = {(e["set"], e["degradation"]): e for e in table}
    assert by[("casia", "none")]["paper_f1"] == 0.889 and by[("casia", "none")]["paper_iou"] == 0.758
    assert by[("casia", "none")]["f1_vs_paper"] == pytest.approx(0.80 - 0.889)
    assert by[("nist16", "none")]["paper_f1"] == 0.725 and by[("nist16", "none")]["iou_vs_paper"] == pytest.approx(-0.133)
    assert math.isnan(by[("folder", "none")]["paper_f1"]) and math.isnan(by[("casia", "jpeg:70")]["paper_f1"])
    write_report(tmp_path, rows, {"resolution": "grid", "paper": {"table": paper.MAIN_TABLE, "row": "FOCAL (ViT)"}},
                 table)
    text = (tmp_path / "results.md").read_text()
    assert "| paper_f1 | f1_vs_paper | paper_iou | iou_vs_paper |" in text and "| 0.889 | -0.089 | 0.758 |" in text
    assert paper.figure("table_6_losses", "NCE (original, [40])", "FF++") == 0.743
    assert paper.figure("table_5_backbones", "FOCAL ViT", "Mean") == 0.834
