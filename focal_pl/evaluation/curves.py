"""Plots where people look rather than read, for ``focal-pl test``: per set, the pooled F1 of the
score map against its threshold and the pixel ROC (``curves/<set>.png``, the 0.5 threshold and the
clustering mask's own point marked), a histogram of the per-image F1s (``curves/<set>_f1.png``), and
an ``index.html`` of the test folder that shows them with the tables and the picture strips."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from focal_pl.files.atomic import write_atomic

LEVELS = 256  # the uint8 score map's levels: the thresholds of the curves


class PixelHistograms:
    """Per set: how many forged and how many pristine pixels fall on each score level (at the
    resolution the curves use), summed over the set's images with a truth."""

    def __init__(self) -> None:
        self.forged: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(LEVELS, np.int64))
        self.pristine: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(LEVELS, np.int64))

    def add(self, set_name: str, score: Tensor, truth: Tensor) -> None:
        """One image's uint8 score map and bool truth (same shape, on the host)."""
        values, truth = score.flatten().long(), truth.flatten().bool()
        self.forged[set_name] += torch.bincount(values[truth], minlength=LEVELS).numpy()
        self.pristine[set_name] += torch.bincount(values[~truth], minlength=LEVELS).numpy()

    def state(self) -> dict[str, tuple[list[int], list[int]]]:
        """Plain data, to gather from every DDP rank."""
        return {name: (self.forged[name].tolist(), self.pristine[name].tolist()) for name in self.forged}

    @staticmethod
    def merged(states: list[dict[str, tuple[list[int], list[int]]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every rank's ``state()`` summed, per set."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for state in states:
            for name, (forged, pristine) in state.items():
                f, p = out.get(name, (np.zeros(LEVELS, np.int64), np.zeros(LEVELS, np.int64)))
                out[name] = (f + np.asarray(forged), p + np.asarray(pristine))
        return out


def curve_points(forged: np.ndarray, pristine: np.ndarray) -> dict[str, np.ndarray | float]:
    """At each threshold ``t / 255`` (forged: score > t), the pooled forged-class F1, the true- and
    false-positive rates; and the ROC's AUC (ties count one half)."""
    f, p = forged.astype(np.float64), pristine.astype(np.float64)
    tp = f.sum() - np.cumsum(f)
    fp = p.sum() - np.cumsum(p)
    fn = np.cumsum(f)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-32)
    tpr = tp / max(f.sum(), 1)
    fpr = fp / max(p.sum(), 1)
    below = np.cumsum(p) - p
    auc = float(((f * below).sum() + 0.5 * (f * p).sum()) / (f.sum() * p.sum())) if f.sum() and p.sum() else math.nan
    return {"threshold": np.arange(LEVELS) / (LEVELS - 1), "f1": f1, "tpr": tpr, "fpr": fpr, "auc": auc}


def plot_curves(path: Path, set_name: str, forged: np.ndarray, pristine: np.ndarray,
                mask_point: dict[str, float] | None = None) -> Path:
    """``path``: F1 against the threshold and the ROC of one set's pooled pixels, the score map's 0.5
    threshold marked on both and the clustering mask's own point (``tpr``, ``fpr``, ``f1``) beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curve_points(forged, pristine)
    half = LEVELS // 2  # score > 128/255: the 0.5 threshold
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.6))
    left.plot(points["threshold"], points["f1"], color="tab:blue")
    left.plot(points["threshold"][half], points["f1"][half], "o", color="tab:red", label="score map > 0.5")
    right.plot(points["fpr"], points["tpr"], color="tab:blue", label=f"score map (AUC {points['auc']:.3f})")
    right.plot(points["fpr"][half], points["tpr"][half], "o", color="tab:red", label="score map > 0.5")
    if mask_point:
        left.axhline(mask_point["f1"], color="tab:green", linestyle="--", linewidth=1,
                     label=f"clustering mask (F1 {mask_point['f1']:.3f})")
        right.plot(mask_point["fpr"], mask_point["tpr"], "*", markersize=11, color="tab:green",
                   label="clustering mask")
    right.plot([0, 1], [0, 1], color="0.7", linewidth=0.8)
    left.set(xlabel="threshold of the score map", ylabel="pooled forged-class F1", ylim=(0, 1),
             title=f"{set_name}: F1 against the threshold")
    right.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1),
              title=f"{set_name}: pixel ROC")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower left" if axis is left else "lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_histogram(path: Path, set_name: str, rows: list[dict[str, Any]]) -> Path:
    """``path``: the per-image macro F1 (FOCAL's) and forged-class F1 of a set's forged images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.2, 3.4))
    bins = np.linspace(0, 1, 21)
    for key, label in (("f1", "F1 (FOCAL, macro)"), ("f1_forged", "F1 @0.5 (IMDL-BenCo)")):
        values = [r[key] for r in rows if isinstance(r.get(key), float) and not math.isnan(r[key])]
        axis.hist(values, bins=bins, alpha=0.55, label=f"{label}, mean {np.mean(values):.3f}" if values else label)
    axis.set(xlabel="per-image F1", ylabel="forged images", title=f"{set_name}: {len(rows)} forged images")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def mask_point(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """The clustering masks' pooled operating point over a set's images with a truth: TPR, FPR, F1."""
    tp, fp, fn, tn = (sum(int(r.get(k) or 0) for r in rows) for k in ("tp", "fp", "fn", "tn"))
    if tp + fn == 0 or fp + tn == 0:
        return None
    return {"tpr": tp / (tp + fn), "fpr": fp / (fp + tn), "f1": 2 * tp / (2 * tp + fp + fn)}


def write_plots(folder: Path, histograms: dict[str, tuple[np.ndarray, np.ndarray]],
                rows: list[dict[str, Any]], resolution: str) -> dict[str, list[str]]:
    """Every set's curves and histogram under ``folder/curves/``; ``{set: [paths relative to folder]}``."""
    from focal_pl.training.runs import safe_stem

    written: dict[str, list[str]] = {}
    for name, (forged, pristine) in histograms.items():
        own = [r for r in rows if r["set"] == name and r["degradation"] == "none"
               and r.get("resolution", "image") == resolution and r["truth"]]
        files = []
        if forged.sum() and pristine.sum():
            files.append(plot_curves(folder / "curves" / f"{safe_stem(name)}.png", name, forged, pristine,
                                     mask_point(own)))
        forged_rows = [r for r in own if not r["authentic"]]
        if forged_rows:
            files.append(plot_histogram(folder / "curves" / f"{safe_stem(name)}_f1.png", name, forged_rows))
        if files:
            written[name] = [str(p.relative_to(folder)) for p in files]
    return written


def write_index(folder: Path, title: str, tables: list[str], plots: dict[str, list[str]]) -> Path:
    """``folder/index.html``: the report's tables (Markdown lines, shown as HTML tables), each set's
    plots and its picture strips (``pictures/<set>/``). No scripts, no network."""
    from focal_pl.training.runs import safe_stem

    body, rows = [], []
    for line in [*tables, ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                rows.append(line.strip("|").split("|"))
            continue
        if rows:
            head, *rest = rows
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                                  for r in rest) + "</table>")
            rows = []
        if line.strip():
            body.append(f"<p>{html.escape(line.lstrip('- '))}</p>")
    for name in dict.fromkeys([*plots, *[p.name for p in sorted((folder / "pictures").glob("*")) if p.is_dir()]]):
        body.append(f"<h2>{html.escape(name)}</h2>")
        body += [f"<img src='{html.escape(p)}'>" for p in plots.get(name, [])]
        strips = sorted((folder / "pictures" / safe_stem(name)).glob("*.png"))
        body += [f"<img class='strip' src='{html.escape(str(p.relative_to(folder)))}'>" for p in strips]
    style = ("body{font-family:sans-serif;margin:16px;background:#fafafa}table{border-collapse:collapse;"
             "margin:8px 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:48%;"
             "margin:4px}img.strip{max-width:98%;display:block}p{font-size:13px;margin:4px 0}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>")
    write_atomic(folder / "index.html", page)
    return folder / "index.html"
