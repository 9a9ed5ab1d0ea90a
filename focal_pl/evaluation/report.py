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

from focal_pl.evaluation.metrics import image_auc
from focal_pl.evaluation.protocols import DILATE, ERODE, balanced_accuracy, pooled

PIXEL_METRICS = ("f1", "f1_forged", "f1_permuted", "iou", "pixel_auc", "f1_best_trufor", "f1_fixed_trufor")
KEYS = ("set", "degradation", "resolution", "forged_images", "authentic_images")
FOCAL_COLUMNS = (*KEYS, "f1", "f1_forged", "f1_permuted", "iou", "pixel_auc", "image_auc", "image_acc",
                 "false_alarm_rate", "false_alarm_area")
PEER_COLUMNS = (*KEYS, "f1_forged", "f1_permuted", "f1_best_trufor", "f1_fixed_trufor", "f1_pooled", "iou_pooled",
                "image_auc", "image_bacc")
COLUMNS = (*FOCAL_COLUMNS, "f1_best_trufor", "f1_fixed_trufor", "f1_pooled", "iou_pooled", "image_bacc")
PAPER_COLUMNS = ("paper_f1", "f1_vs_paper", "paper_iou", "iou_vs_paper")
LEGEND = {
    "f1": "FOCAL's F1: macro F1 over forged and pristine pixels at 0.5, per forged image, mean",
    "f1_forged": "IMDL-BenCo's pixel F1: F1 of the forged class at 0.5, per forged image, mean",
    "f1_permuted": "IMDL-BenCo's `double` F1: the larger forged-class F1 of the mask and of its inverse, per image",
    "iou": "FOCAL's IoU: IoU of the forged class at 0.5, per forged image, mean",
    "pixel_auc": "pixel AUC of the score map (cosine distance to the pristine center), per forged image, mean",
    "f1_best_trufor": f"TruFor's / SAFIRE's F1 best: the best threshold of the score map per image, the larger of map "
                      f"and inverse, pixels within the boundary band left out (truth eroded {ERODE} px / dilated "
                      f"{DILATE} px), mean over forged images",
    "f1_fixed_trufor": "TruFor's / SAFIRE's F1 fixed: the same on the mask (the 0.5 threshold)",
    "f1_pooled": "dataset-level F1: forged-class pixel counts of all forged images summed, then the F1",
    "iou_pooled": "dataset-level IoU: the same counts, then the IoU",
    "image_auc": "AUC of the image-level score over forged and authentic images (TruFor's detection AUC)",
    "image_acc": "accuracy of 'forged if the image-level score exceeds image_threshold' (the AUC's score)",
    "image_bacc": "balanced accuracy (mean of forged and authentic recalls) at the same threshold (TruFor's, "
                  "at its 0.5)",
    "false_alarm_rate": "share of authentic images with any pixel predicted forged",
    "false_alarm_area": "mean share of pixels predicted forged in authentic images",
    "resolution": "grid: on the feature grid against the truth brought there as the official code does (what "
                  "the paper's numbers use; it inflates them); image: at each image's own size (the peers')",
    "paper_f1": "the paper's figure for this model (or ablation row) on this set (macro F1)",
    "f1_vs_paper": "our f1 minus the paper's",
    "paper_iou": "the paper's IoU on this set, where its table has one",
    "iou_vs_paper": "our iou minus the paper's",
}
HEADERS = {  # the column headers of results.md: each metric named for its protocol
    "f1": "F1 (FOCAL, macro)", "f1_forged": "F1 @0.5 (IMDL-BenCo)", "f1_permuted": "F1 double (IMDL-BenCo)",
    "iou": "IoU (FOCAL)", "pixel_auc": "pixel AUC", "f1_best_trufor": "F1 best (TruFor)",
    "f1_fixed_trufor": "F1 fixed (TruFor)", "f1_pooled": "F1 pooled", "iou_pooled": "IoU pooled",
    "image_auc": "image AUC", "image_acc": "image acc", "image_bacc": "image bAcc (TruFor)",
    "false_alarm_rate": "false alarms", "false_alarm_area": "false-alarm area",
    "forged_images": "forged", "authentic_images": "authentic",
}

TABLE_METRICS = (*PIXEL_METRICS, "f1_pooled", "iou_pooled", "image_auc", "image_acc", "image_bacc",
                 "false_alarm_rate", "false_alarm_area")
NEEDS_AUTHENTIC = ("image_auc", "image_acc", "image_bacc", "false_alarm_rate", "false_alarm_area")
NO_AUTHENTIC = "n/a: no authentic images"


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def aggregate(rows: list[dict[str, Any]], image_threshold: float | None = 0.0) -> list[dict[str, Any]]:
    """One row per (set, degradation): pixel metrics are means over forged images; the image-level
    AUC and accuracy come from one score (accuracy: forged when the score exceeds
    ``image_threshold``; None: no accuracy); they and the false-alarm figures need authentic
    images, and are NaN (``NO_AUTHENTIC`` in the tables) for a set without any."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["set"], row["degradation"], row.get("resolution", "image"))].append(row)
    out = []
    for (name, degradation, resolution), items in groups.items():
        scored = [r for r in items if r["truth"]]
        forged = [r for r in scored if not r["authentic"]]
        authentic = [r for r in scored if r["authentic"]]
        entry: dict[str, Any] = {"set": name, "degradation": degradation, "resolution": resolution,
                                 "forged_images": len(forged), "authentic_images": len(authentic)}
        for key in PIXEL_METRICS:
            entry[key] = _mean([r.get(key, math.nan) for r in forged])
        labels = [not r["authentic"] for r in scored]
        entry["image_auc"] = image_auc([r["image_score"] for r in scored], labels)
        entry["image_acc"] = (float(np.mean([(r["image_score"] > image_threshold) == lab
                                             for r, lab in zip(scored, labels)]))
                              if forged and authentic and image_threshold is not None else math.nan)
        entry["image_bacc"] = balanced_accuracy([r["image_score"] for r in scored], labels, image_threshold)
        entry.update(pooled(forged))
        entry["false_alarm_rate"] = _mean([float(r["forged_share"] > 0) for r in authentic])
        entry["false_alarm_area"] = _mean([r["forged_share"] for r in authentic])
        out.append(entry)
    return out


def beside_paper(table: list[dict[str, Any]], paper_table: str, row: str) -> None:
    """Add the paper's F1 / IoU of ``row`` and our difference to the undegraded entries of the sets
    the paper reports (in place)."""
    from focal_pl.evaluation import paper

    for entry in table:
        for metric in ("f1", "iou"):
            value = paper.figure(paper_table, row, entry["set"], metric) if entry["degradation"] == "none" else None
            entry[f"paper_{metric}"] = math.nan if value is None else value
            entry[f"{metric}_vs_paper"] = math.nan if value is None else entry[metric] - value


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
         "notes": notes, "published": published_figures(table)}, indent=1, default=lambda v: None))
    for name, data, fields in (("results.csv", table, COLUMNS + (PAPER_COLUMNS if meta.get("paper") else ())),
                               ("per_image.csv", rows, list(rows[0]) if rows else [])):
        with (folder / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(data)
    lines = [f"# Evaluation: {meta.get('model', '')}", "", *summary_lines(table, meta, legends=True)]
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    return table


def _markdown(table: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    """One Markdown table of ``columns``, headed by each metric's protocol name."""
    return ["| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns),
            *["| " + " | ".join(_fmt(entry, c) for c in columns) + " |" for entry in table]]


def _legend(columns: tuple[str, ...]) -> list[str]:
    """One line per column under a table: its header, its key and its definition."""
    return ["", "Columns:"] + [f"- `{HEADERS.get(k, k)}` ({k}): {LEGEND[k]}" for k in columns if k in LEGEND]


def summary_lines(table: list[dict[str, Any]], meta: dict[str, Any], legends: bool = False) -> list[str]:
    """The report's text: how it was scored, FOCAL's protocol table, the peers' protocols table and the
    peers' published figures under each protocol; ``legends``: each column's definition under its table."""
    where = {"image": "each image's own resolution",
             "grid": "the feature grid (as the official code does; this inflates the numbers)",
             "both": "the feature grid (as the official code and the paper) and each image's own resolution, "
                     "one row each"}.get(meta.get("resolution", "image"), meta.get("resolution"))
    beside = meta.get("paper")
    code = [f"Code: {meta['code']}.", ""] if meta.get("code") else []
    threshold = (f"forged above {meta['image_threshold']:g}" if meta.get("image_threshold") is not None
                 else "no accuracy without testing.image_threshold")
    focal = FOCAL_COLUMNS + (PAPER_COLUMNS if beside else ())
    lines = [*code, f"Scored at {where}; clustering: {meta.get('clusterer', '')}. Pixel metrics are over forged "
             f"images; image AUC and accuracy use one score ({meta.get('image_score', '')}, {threshold})."
             + (f" Beside the paper: {beside['row']} of its {beside['table']} (scored on the grid: compare the "
                "grid rows)." if beside else ""), "", "FOCAL's protocol:", "", *_markdown(table, focal)]
    if legends:
        lines += _legend(focal)
    lines += ["", "The peers' protocols (each column named for the code it follows):", "",
              *_markdown(table, PEER_COLUMNS)]
    if legends:
        lines += _legend(PEER_COLUMNS)
    published = published_lines(table)
    if published:
        lines += ["", "Published figures under these protocols (other methods, on the same sets):", "", *published]
    return lines


def published_figures(table: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{metric: {set: [{method, value, source}, ...]}}`` for the table's undegraded sets."""
    from focal_pl.evaluation import paper

    sets = list(dict.fromkeys(e["set"] for e in table if e["degradation"] == "none"))
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for metric in TABLE_METRICS:
        for name in sets:
            found = paper.published(metric, name)
            if found:
                out.setdefault(metric, {})[name] = found
    return out


def published_lines(table: list[dict[str, Any]]) -> list[str]:
    """For each metric of the table and each undegraded set in it, the peers' published figures under
    that metric's protocol (``paper_results.yaml``'s ``peers``), one line per metric and set."""
    lines = []
    for metric, sets in published_figures(table).items():
        for name, found in sets.items():
            figures = ", ".join(f"{f['method']} {f['value']:.3f}" for f in found)
            sources = "; ".join(dict.fromkeys(f["source"] for f in found))
            lines.append(f"- {HEADERS.get(metric, metric)}, {name}: {figures} ({sources})")
    return lines


def plot_robustness(folder: Path, table: list[dict[str, Any]]) -> list[Path]:
    """For each metric, one PNG: a panel per degradation kind, the metric against its strength,
    one line per data set, the undegraded value as a dashed line (at each image's own resolution
    when it was scored there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolutions = {e.get("resolution", "image") for e in table}
    shown = "image" if "image" in resolutions else next(iter(resolutions), "image")
    table = [e for e in table if e.get("resolution", "image") == shown]  # one resolution per plot: its own size
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
