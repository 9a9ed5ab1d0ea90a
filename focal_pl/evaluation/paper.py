"""The FOCAL paper's published figures (``paper_results.yaml`` beside this file), looked up by table,
row and test set, so that test and ablation tables show the paper's figure and our difference."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

FILE = Path(__file__).with_name("paper_results.yaml")
MAIN_TABLE = "table_2_pixel"  # pixel F1 and IoU of the full models on the six test sets


@functools.cache
def figures() -> dict[str, Any]:
    """The whole file (tables, set names, the extractors' rows)."""
    return yaml.safe_load(FILE.read_text())


def paper_set(name: str) -> str | None:
    """The paper's name of a focal-pl test set (``casia`` -> ``CASIA``; ``casia:CASIA1`` too), or None."""
    return figures()["sets"].get(name.split(":", 1)[0].lower())


def row_of(extractor: Any) -> str | None:
    """The main table's row of a model with this extractor (``SamViT`` -> ``FOCAL (ViT)``), or None."""
    return figures()["extractors"].get(type(extractor).__name__)


def rows(table: str) -> list[str]:
    """The row names of a table."""
    return list(figures()[table]["rows"])


def figure(table: str, row: str | None, set_name: str, metric: str = "f1") -> float | None:
    """The paper's ``metric`` (``f1``, or ``iou`` where the table has it) of ``row`` on a test set
    (a focal-pl set name, a paper set name, or ``Mean``); None where the paper has none."""
    if row is None or table not in figures():
        return None
    values = figures()[table]["rows"].get(row)
    if values is None:
        return None
    key = set_name if set_name in values else paper_set(set_name)
    value = values.get(key) if key else None
    if isinstance(value, list):  # [F1, IoU]
        return value[("f1", "iou").index(metric)] if metric in ("f1", "iou") else None
    return value if metric == "f1" else None


# the focal-pl report column each of the paper's competitor tables compares with: (table, index in [F1, IoU])
COMPETITOR_TABLES = {"f1": ("table_2_pixel", 0), "iou": ("table_2_pixel", 1),
                     "image_auc": ("table_4_image", 0), "image_acc": ("table_4_image", 1)}


def published(metric: str, set_name: str) -> list[dict[str, Any]]:
    """Other methods' published figures under the protocol of report column ``metric`` on a test set:
    the FOCAL paper's competitor rows (TruFor, CAT-Net, ... as its authors measured them, its
    protocol) and the ``peers`` entries (each method's own paper or code, its protocol). Each is
    ``{method, value, source}``."""
    out = []
    key = paper_set(set_name)
    if metric in COMPETITOR_TABLES and key:
        table, index = COMPETITOR_TABLES[metric]
        for row, values in figures()[table]["rows"].items():
            value = values.get(key)
            if not row.startswith("FOCAL") and isinstance(value, list):
                out.append({"method": row, "value": float(value[index]),
                            "source": f"the FOCAL paper's {table}, measured by its authors"})
    for entry in figures().get("peers", []):
        if entry["metric"] != metric:
            continue
        for method, values in entry["figures"].items():
            value = values.get(set_name.split(":", 1)[0].lower())  # keyed by focal-pl's reader names
            if value is not None:
                out.append({"method": method, "value": float(value), "source": entry["source"]})
    return out
