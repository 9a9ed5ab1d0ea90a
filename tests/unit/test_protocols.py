"""The peers' columns of the test report against the peers' own formulas (tests/helpers/peer_formulas.py)
on fixed masks: TruFor's best and fixed F1 with boundary exclusion, IMDL-BenCo's forged-class and
double F1, dataset-level pooled F1 / IoU, TruFor's balanced accuracy; and the report names each
column for its protocol and lists the published figures under it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, jaccard_score

from focal_pl.evaluation.metrics import pixel_scores
from focal_pl.evaluation.protocols import balanced_accuracy, boundary_truth, peer_scores, pooled
from helpers.peer_formulas import benco_f1, trufor_f1_best, trufor_f1_fixed, trufor_truths


def cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, truth, mask, uint8 score map) on 96 x 128 images: large, small and thin forgeries,
    shifted, inverted, empty, full and noisy predictions, score maps with ties and without."""
    rng = np.random.default_rng(0)
    h, w = 96, 128
    yy, xx = np.mgrid[:h, :w]
    box = (yy > 20) & (yy < 60) & (xx > 30) & (xx < 90)
    disk = (yy - 50) ** 2 + (xx - 40) ** 2 < 15**2
    tiny = (yy > 40) & (yy < 46) & (xx > 40) & (xx < 46)  # gone after TruFor's 15 px erosion
    thin = (xx > 60) & (xx < 64)
    out = []
    for tname, truth in (("box", box), ("disk", disk), ("tiny", tiny), ("thin", thin)):
        shifted = np.roll(truth, (5, 9), axis=(0, 1))
        noisy = truth ^ (rng.random((h, w)) < 0.1)
        smooth = np.clip(truth * 180 + rng.normal(40, 30, (h, w)), 0, 255).astype(np.uint8)
        ties = (rng.integers(0, 4, (h, w)) * 60 + truth * 15).astype(np.uint8)
        for mname, mask in (("same", truth), ("shifted", shifted), ("inverse", ~truth), ("empty", np.zeros_like(truth)),
                            ("full", np.ones_like(truth)), ("noisy", noisy)):
            for sname, score in (("smooth", smooth), ("ties", ties), ("from-mask", mask.astype(np.uint8) * 255)):
                out.append((f"{tname}/{mname}/{sname}", truth, mask, score))
    return out


CASES = cases()


def test_boundary_band_is_trufors():
    for _, truth, _, _ in CASES[::18]:
        ours, theirs = boundary_truth(torch.from_numpy(truth)), trufor_truths(truth)
        assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])


@pytest.mark.parametrize("index", range(0, len(CASES), 3))
def test_trufor_best_and_fixed_f1_equal_trufors_formula(index):
    name, truth, mask, score = CASES[index]
    for s in (score, CASES[index + 1][3], CASES[index + 2][3]):
        got = peer_scores(torch.from_numpy(mask), torch.from_numpy(s), torch.from_numpy(truth))
        expected_best, expected_fixed = trufor_f1_best(s, truth), trufor_f1_fixed(mask, truth)
        assert got["f1_best_trufor"] == pytest.approx(expected_best, abs=1e-9), name
        if math.isnan(expected_fixed):
            assert math.isnan(got["f1_fixed_trufor"]), name
        else:
            assert got["f1_fixed_trufor"] == pytest.approx(expected_fixed, abs=1e-9), name


def test_the_tiny_forgery_leaves_trufor_nothing_forged_to_score():
    """A 5 x 5 region vanishes under the 15 px erosion: the fixed F1 of an empty mask is NaN there (a
    single class in truth and mask, TruFor's confusion-matrix exception), and it leaves the set's mean."""
    truth = next(c[1] for c in CASES if c[0].startswith("tiny"))
    got = peer_scores(torch.zeros(truth.shape, dtype=torch.bool), torch.zeros(truth.shape, dtype=torch.uint8),
                      torch.from_numpy(truth))
    assert math.isnan(got["f1_fixed_trufor"]) and math.isnan(trufor_f1_fixed(np.zeros_like(truth), truth))
    assert not boundary_truth(truth)[1].any()


@pytest.mark.parametrize("index", range(0, len(CASES), 3))
def test_forged_and_double_f1_equal_imdl_bencos(index):
    name, truth, mask, _ = CASES[index]
    ours = pixel_scores(torch.from_numpy(mask), torch.from_numpy(truth))
    assert float(ours["f1_forged"]) == pytest.approx(benco_f1(mask, truth), abs=1e-6), name
    assert float(ours["f1_permuted"]) == pytest.approx(benco_f1(mask, truth, "double"), abs=1e-6), name


def test_pooled_f1_and_iou_are_the_set_pixels_at_once():
    chosen = CASES[1::7]
    rows = [peer_scores(torch.from_numpy(m), torch.from_numpy(s), torch.from_numpy(t)) for _, t, m, s in chosen]
    truth = np.concatenate([t.ravel() for _, t, _, _ in chosen])
    pred = np.concatenate([m.ravel() for _, _, m, _ in chosen])
    got = pooled(rows)
    assert got["f1_pooled"] == pytest.approx(f1_score(truth, pred), abs=1e-12)
    assert got["iou_pooled"] == pytest.approx(jaccard_score(truth, pred), abs=1e-12)
    assert math.isnan(pooled([])["f1_pooled"])


def test_balanced_accuracy_is_scikit_learns():
    rng = np.random.default_rng(3)
    scores = rng.random(40).tolist()
    labels = (rng.random(40) > 0.4).tolist()
    for threshold in (0.0, 0.3, 0.5):
        expected = balanced_accuracy_score(labels, np.asarray(scores) > threshold)
        assert balanced_accuracy(scores, labels, threshold) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(balanced_accuracy(scores, [True] * 40, 0.5)) and math.isnan(balanced_accuracy(scores, labels, None))


def test_the_report_names_each_column_for_its_protocol_and_lists_published_figures(tmp_path):
    from focal_pl.evaluation.report import aggregate, write_report

    rows = []
    for i, (name, truth, mask, score) in enumerate(CASES[:12]):
        numbers = {k: float(v) for k, v in pixel_scores(torch.from_numpy(mask), torch.from_numpy(truth)).items()}
        peers = peer_scores(torch.from_numpy(mask), torch.from_numpy(score), torch.from_numpy(truth))
        rows.append({"set": "casia", "degradation": "none", "resolution": "image", "name": name, "truth": True,
                     "authentic": False, "pixel_auc": 0.5, "image_score": float(mask.mean()),
                     "forged_share": float(mask.mean()), **numbers, **peers})
    rows += [{"set": "casia", "degradation": "none", "resolution": "image", "name": f"au{i}", "truth": True,
              "authentic": True, "image_score": s, "forged_share": s, "tp": 0, "fp": 5, "fn": 0}
             for i, s in enumerate([0.0, 0.2])]
    table = aggregate(rows, 0.0)
    entry = table[0]
    forged = [r for r in rows if not r["authentic"]]
    assert entry["f1_best_trufor"] == pytest.approx(np.nanmean([r["f1_best_trufor"] for r in forged]))
    assert entry["f1_pooled"] == pytest.approx(pooled(forged)["f1_pooled"])  # authentic pixels stay out
    assert entry["image_bacc"] == pytest.approx(balanced_accuracy([r["image_score"] for r in rows],
                                                                  [not r["authentic"] for r in rows], 0.0))
    write_report(tmp_path, rows, {"model": "SamViT", "resolution": "image", "image_threshold": 0.0}, table)
    text = (tmp_path / "results.md").read_text()
    for header in ("F1 (FOCAL, macro)", "F1 @0.5 (IMDL-BenCo)", "F1 double (IMDL-BenCo)", "F1 best (TruFor)",
                   "F1 fixed (TruFor)", "F1 pooled", "IoU pooled", "image bAcc (TruFor)"):
        assert f"| {header} |" in text or f" {header} |" in text, header
        assert f"- `{header}` (" in text, header  # its one-line definition under the table
    assert "- F1 (FOCAL, macro), casia: TruFor 0.835, CAT-Net 0.846" in text  # the paper's Table II
    import json

    published = json.loads((tmp_path / "results.json").read_text())["published"]
    assert {"method": "TruFor", "value": 0.835}.items() <= published["f1"]["casia"][0].items()


def test_every_published_peer_figure_names_its_column_source_and_commit():
    """paper_results.yaml's ``peers``: each entry follows a column of the report, cites a repository
    at a commit with its lines, and keys its figures by focal-pl's reader names."""
    import re

    from focal_pl.evaluation import paper
    from focal_pl.evaluation.report import TABLE_METRICS

    readers = {"columbia", "coverage", "casia", "nist16", "imd2020", "misd", "ffpp"}
    for entry in paper.figures()["peers"]:
        assert entry["metric"] in TABLE_METRICS
        assert re.search(r"tier [AB]: [\w.-]+/[\w.-]+@[0-9a-f]{7,} \S+ L\d+", entry["source"]), entry["source"]
        for method, values in entry["figures"].items():
            assert set(values) <= readers and all(0 <= v <= 1 for v in values.values()), method


def test_curve_points_are_the_pooled_f1_and_roc_of_the_score_map(tmp_path):
    from sklearn.metrics import roc_auc_score

    from focal_pl.evaluation.curves import PixelHistograms, curve_points, mask_point, plot_curves

    histograms = PixelHistograms()
    chosen = CASES[::11]
    for _, truth, _, score in chosen:
        histograms.add("casia", torch.from_numpy(score), torch.from_numpy(truth))
    merged = PixelHistograms.merged([histograms.state(), histograms.state()])  # two ranks, the same images
    forged, pristine = merged["casia"]
    truth = np.concatenate([t.ravel() for _, t, _, _ in chosen])
    score = np.concatenate([s.ravel() for _, _, _, s in chosen])
    assert forged.sum() == 2 * truth.sum() and pristine.sum() == 2 * (~truth).sum()
    points = curve_points(forged, pristine)
    assert points["auc"] == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    for t in (0, 60, 128, 200):
        assert points["f1"][t] == pytest.approx(f1_score(truth, score > t), abs=1e-12)
    rows = [pixel_counts_row(m, t) for _, t, m, _ in chosen]
    point = mask_point(rows)
    pred = np.concatenate([m.ravel() for _, _, m, _ in chosen])
    assert point["f1"] == pytest.approx(f1_score(truth, pred)) and point["tpr"] == pytest.approx(pred[truth].mean())
    assert plot_curves(tmp_path / "c.png", "casia", forged, pristine, point).stat().st_size > 10_000


def pixel_counts_row(mask: np.ndarray, truth: np.ndarray) -> dict:
    from focal_pl.evaluation.protocols import pixel_counts

    return pixel_counts(torch.from_numpy(mask), torch.from_numpy(truth))
