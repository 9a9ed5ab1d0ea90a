"""From per-image results to per-data-set tables: results.json, results.csv, results.md, the
per-image CSV, and plots of each metric against each degradation."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from focal_pl.metrics import image_auc

PIXEL_METRICS = ("f1", "f1_forged", "f1_permuted", "iou", "pixel_auc")
COLUMNS = ("set", "degradation", "forged_images", "authentic_images", *PIXEL_METRICS,
           "image_auc", "image_acc", "false_alarm_rate", "false_alarm_area")
LEGEND = {
    "f1": "macro F1 over forged and pristine pixels (the FOCAL paper's F1)",
    "f1_forged": "F1 of the forged class (IMDL-BenCo's and most papers' F1)",
    "f1_permuted": "max of the forged-class F1 of the mask and of its inverse (TruFor's)",
    "iou": "IoU of the forged class",
    "pixel_auc": "pixel AUC of the score (cosine distance to the pristine center), forged images",
    "image_auc": "AUC of the image-level score over forged and authentic images",
    "image_acc": "accuracy of 'forged if the image-level score exceeds image_threshold' (the AUC's score)",
    "false_alarm_rate": "share of authentic images with any pixel predicted forged",
    "false_alarm_area": "mean share of pixels predicted forged in authentic images",
}

TABLE_METRICS = (*PIXEL_METRICS, "image_auc", "image_acc", "false_alarm_rate", "false_alarm_area")
NEEDS_AUTHENTIC = ("image_auc", "image_acc", "false_alarm_rate", "false_alarm_area")
NO_AUTHENTIC = "n/a: no authentic images"


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def aggregate(rows: list[dict[str, Any]], image_threshold: float | None = 0.0) -> list[dict[str, Any]]:
    """One row per (set, degradation): pixel metrics are means over forged images; the image-level
    AUC and accuracy come from one score (accuracy: forged when the score exceeds
    ``image_threshold``; None: no accuracy); they and the false-alarm figures need authentic
    images, and are NaN (``NO_AUTHENTIC`` in the tables) for a set without any."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["set"], row["degradation"])].append(row)
    out = []
    for (name, degradation), items in groups.items():
        scored = [r for r in items if r["truth"]]
        forged = [r for r in scored if not r["authentic"]]
        authentic = [r for r in scored if r["authentic"]]
        entry: dict[str, Any] = {"set": name, "degradation": degradation,
                                 "forged_images": len(forged), "authentic_images": len(authentic)}
        for key in PIXEL_METRICS:
            entry[key] = _mean([r[key] for r in forged])
        labels = [not r["authentic"] for r in scored]
        entry["image_auc"] = image_auc([r["image_score"] for r in scored], labels)
        entry["image_acc"] = (float(np.mean([(r["image_score"] > image_threshold) == lab
                                             for r, lab in zip(scored, labels)]))
                              if forged and authentic and image_threshold is not None else math.nan)
        entry["false_alarm_rate"] = _mean([float(r["forged_share"] > 0) for r in authentic])
        entry["false_alarm_area"] = _mean([r["forged_share"] for r in authentic])
        out.append(entry)
    return out


def _fmt(entry: dict[str, Any], column: str) -> str:
    value = entry[column]
    if column in NEEDS_AUTHENTIC and not entry["authentic_images"]:
        return NO_AUTHENTIC
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def write_report(folder: Path, rows: list[dict[str, Any]], meta: dict[str, Any],
                 table: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Write results.json / .csv / .md and per_image.csv to ``folder``; returns the table."""
    folder.mkdir(parents=True, exist_ok=True)
    table = aggregate(rows, meta.get("image_threshold", 0.0)) if table is None else table
    notes = {e["set"]: NO_AUTHENTIC for e in table if not e["authentic_images"]}
    (folder / "results.json").write_text(json.dumps(
        {**meta, "legend": LEGEND, "results": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                                 for k, v in e.items()} for e in table],
         "notes": notes}, indent=1, default=lambda v: None))
    for name, data, fields in (("results.csv", table, COLUMNS),
                               ("per_image.csv", rows, list(rows[0]) if rows else [])):
        with (folder / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(data)
    where = ("each image's own resolution" if meta.get("resolution") == "image"
             else "the feature grid (as the official code does; this inflates the numbers)")
    lines = [f"# Evaluation: {meta.get('model', '')}", "",
             f"Scored at {where}; clustering: {meta.get('clusterer', '')}. "
             "Pixel metrics are means over forged images; image AUC and accuracy use one score "
             f"({meta.get('image_score', '')}, " + (f"forged above {meta['image_threshold']:g}"
                                                   if meta.get("image_threshold") is not None
                                                   else "no accuracy without testing.image_threshold") + ").", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(entry, c) for c in COLUMNS) + " |" for entry in table]
    lines += ["", "Columns:"] + [f"- `{k}`: {v}" for k, v in LEGEND.items()]
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    return table


def plot_robustness(folder: Path, table: list[dict[str, Any]]) -> list[Path]:
    """For each metric, one PNG: a panel per degradation kind, the metric against its strength,
    one line per data set, the undegraded value as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({e["degradation"].split(":")[0] for e in table} - {"none"})
    if not kinds:
        return []
    sets = sorted({e["set"] for e in table})
    written = []
    for metric in ("f1", "f1_forged", "iou", "pixel_auc"):
        figure, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3.0), squeeze=False, sharey=True)
        for axis, kind in zip(axes[0], kinds):
            for name in sets:
                points = sorted((float(e["degradation"].split(":")[1]), e[metric]) for e in table
                                if e["set"] == name and e["degradation"].startswith(kind + ":"))
                if points:
                    line = axis.plot(*zip(*points), marker="o", label=name)[0]
                    base = [e[metric] for e in table if e["set"] == name and e["degradation"] == "none"]
                    if base:
                        axis.axhline(base[0], color=line.get_color(), linestyle="--", linewidth=0.8)
            axis.set_title(kind)
            axis.set_xlabel({"jpeg": "quality", "resize": "scale", "blur": "kernel", "noise": "std",
                             "osn": "max side"}.get(kind, kind))
            if kind in ("jpeg", "resize", "osn"):
                axis.invert_xaxis()
            axis.grid(alpha=0.3)
        axes[0][0].set_ylabel(metric)
        axes[0][-1].legend(fontsize=7)
        figure.tight_layout()
        path = folder / f"robustness_{metric}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
