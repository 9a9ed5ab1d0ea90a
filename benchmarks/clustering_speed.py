"""Seconds per image to cluster one feature map with exact HDBSCAN: scikit-learn's public class
against focal-pl's torch path (same partition, checked here too), at the paper's map sizes.

    python benchmarks/clustering_speed.py [--threads 2]

Writes benchmarks/results/clustering_speed.json and .md with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import HDBSCAN
from sklearn.metrics import adjusted_rand_score

from focal_pl.clustering.fast_hdbscan import hdbscan_labels
from focal_pl.runs import machine as run_machine

RESULTS = Path(__file__).parent / "results"


def feature_map(n: int, dim: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    a, b = g.normal(size=(2, dim))
    forged = n // 7
    rows = np.concatenate([a + 0.35 * g.normal(size=(n - forged, dim)), b + 0.3 * g.normal(size=(forged, dim))])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sklearn-large", action="store_true", help="also time scikit-learn at 128 x 128 (minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for side, dim, size in ((64, 256, 200), (128, 256, 800)):
        data = feature_map(side * side, dim, 0)
        hdbscan_labels(data, size)  # warm-up
        fast64, labels = timed(lambda: hdbscan_labels(data, size), 3)
        fast32, labels32 = timed(lambda: hdbscan_labels(data, size, dtype=torch.float32), 3)
        row = {"map": f"{side} x {side} x {dim}", "points": side * side, "min_cluster_size": size,
               "torch_float64_s": fast64, "torch_float32_s": fast32}
        if side == 64 or args.sklearn_large:
            slow, reference = timed(lambda: HDBSCAN(min_cluster_size=size, copy=True).fit_predict(data), 1)
            row.update(sklearn_s=slow, ari_float64=adjusted_rand_score(reference, labels),
                       ari_float32=adjusted_rand_score(reference, labels32))
        rows.append(row)
        print(json.dumps(row), flush=True)
    machine = run_machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "clustering_speed.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    lines = ["# Exact HDBSCAN per feature map (CPU)", "",
             f"Machine: {machine['processor']}, {args.threads} threads, torch {machine['torch']}, {machine['date']}. "
             "Median of 3 (scikit-learn: 1 run). ARI = adjusted Rand index against scikit-learn's labels, noise included.",
             "", "| map | min cluster | scikit-learn HDBSCAN | focal-pl torch float64 (default) | torch float32 | ARI f64 / f32 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        sk = f"{r['sklearn_s']:.2f} s" if "sklearn_s" in r else "not run"
        ari = f"{r['ari_float64']:.3f} / {r['ari_float32']:.3f}" if "ari_float64" in r else "-"
        lines.append(f"| {r['map']} | {r['min_cluster_size']} | {sk} | {r['torch_float64_s']:.3f} s | "
                     f"{r['torch_float32_s']:.3f} s | {ari} |")
    (RESULTS / "clustering_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
