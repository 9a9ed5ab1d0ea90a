"""Seconds per feature map to cluster with exact HDBSCAN: scikit-learn's public class against
focal-pl's torch paths (Prim on the host, Boruvka on the device, Boruvka batched), at the paper's
map sizes, with the partition checked against scikit-learn's; then how often exact ties make the
Boruvka partition differ from scikit-learn's, on many small FOCAL-like maps and maps with flat
regions (duplicate rows).

    python benchmarks/clustering_speed.py [--device cpu|cuda] [--threads 2] [--tie-maps 100]

Writes benchmarks/results/clustering_speed.json and .md (CPU), clustering_speed_gpu.json and .md
(CUDA), with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import HDBSCAN
from sklearn.metrics import adjusted_rand_score

from focal_pl.clustering.fast_hdbscan import hdbscan_labels, hdbscan_labels_batch
from focal_pl.runs import machine as run_machine
from focal_pl.runs import machine_line

# the tie diagnostics are test code (tests/helpers), not the package's: the tie count below needs them
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.hdbscan_ties import ambiguous_points  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SIZES = ((64, 256, 200, 16), (128, 256, 800, 4))  # side, channels, min_cluster_size, batch


def focal_like(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    """Unit features like a trained extractor's: a pristine cluster, forged ones, 2% stray points."""
    g = np.random.default_rng(seed)
    a, b, c = g.normal(size=(3, dim))
    stray = g.normal(size=(n // 50, dim)) * 2.0
    rest = n - len(stray)
    if kind == "forged":
        parts = [a + 0.35 * g.normal(size=(rest - rest // 8, dim)), b + 0.3 * g.normal(size=(rest // 8, dim))]
    elif kind == "two_forged":
        parts = [a + 0.35 * g.normal(size=(rest - rest // 8 - rest // 12, dim)),
                 b + 0.3 * g.normal(size=(rest // 8, dim)), c + 0.5 * g.normal(size=(rest // 12, dim))]
    else:  # authentic: one cluster
        parts = [a + 0.35 * g.normal(size=(rest, dim))]
    rows = np.concatenate([*parts, stray])[g.permutation(n)]
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def with_flat_regions(rows: np.ndarray, seed: int) -> np.ndarray:
    """Up to three disjoint flat regions: each repeats one feature vector exactly (10-150 rows)."""
    g = np.random.default_rng(seed)
    rows = rows.copy()
    sizes = g.integers(10, 150, size=int(g.integers(1, 4)))
    for group in np.split(g.choice(len(rows), int(sizes.sum()), replace=False), np.cumsum(sizes)[:-1]):
        rows[group] = rows[group[0]]
    return rows


def same(a: np.ndarray, b: np.ndarray, where=slice(None)) -> bool:
    return adjusted_rand_score(a[where], b[where]) == 1.0 and np.array_equal(a[where] == -1, b[where] == -1)


def timed(fn, repeats: int, device: torch.device) -> tuple[float, float, object]:
    """Median wall seconds and median process CPU seconds of ``repeats`` calls (after the caller's
    warm-up), synchronizing a CUDA device before and after each."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), out


def speed(device: torch.device, repeats: int, sklearn_large: bool) -> list[dict]:
    rows_out = []
    for side, dim, size, batch in SIZES:
        n = side * side
        maps = np.stack([focal_like(("forged", "two_forged", "authentic")[s % 3], n, dim, s) for s in range(batch)])
        one = torch.from_numpy(maps[0]).to(device)
        many = torch.from_numpy(maps).to(device)
        row = {"map": f"{side} x {side} x {dim}", "points": n, "min_cluster_size": size, "batch": batch}
        for mst in ("prim", "boruvka"):
            hdbscan_labels(one, size, mst=mst)  # warm-up
            wall, cpu, labels = timed(lambda mst=mst: hdbscan_labels(one, size, mst=mst), repeats, device)
            row[f"{mst}_s"], row[f"{mst}_cpu_s"], row[f"{mst}_labels"] = wall, cpu, labels
        hdbscan_labels_batch(many[:2], size, mst="boruvka")  # warm-up
        wall, cpu, batched = timed(lambda: hdbscan_labels_batch(many, size, mst="boruvka"), repeats, device)
        row.update(batched_per_map_s=wall / batch, batched_per_map_cpu_s=cpu / batch,
                   batched_equals_single=bool(same(batched[0], row["boruvka_labels"])))
        if side == 64 or sklearn_large:
            wall, cpu, reference = timed(lambda: HDBSCAN(min_cluster_size=size, copy=True).fit_predict(maps[0]), 1,
                                         torch.device("cpu"))
            ambiguous, regroup = ambiguous_points(maps[0], size)
            row.update(sklearn_s=wall, sklearn_cpu_s=cpu, ties=int(ambiguous.sum()), regroup=regroup,
                       prim_equal=same(reference, row["prim_labels"]),
                       boruvka_equal=same(reference, row["boruvka_labels"]),
                       boruvka_equal_outside_ties=same(reference, row["boruvka_labels"], ~ambiguous),
                       ari_prim=adjusted_rand_score(reference, row["prim_labels"]),
                       ari_boruvka=adjusted_rand_score(reference, row["boruvka_labels"]))
        for mst in ("prim", "boruvka"):
            row.pop(f"{mst}_labels")
        rows_out.append(row)
        print(json.dumps(row), flush=True)
    return rows_out


def ties(device: torch.device, count: int) -> list[dict]:
    """Over ``count`` random small maps of each family: how often each path differs from scikit-learn."""
    families = []
    for family in ("continuous", "flat regions"):
        tally = dict(family=family, maps=0, prim_differs=0, boruvka_differs=0, maps_with_ties=0, regroup=0,
                     differs_outside_ties=0)
        for seed in range(count):
            g = np.random.default_rng(1000 + seed)
            kind = ("forged", "two_forged", "authentic")[seed % 3]
            rows = focal_like(kind, int(g.choice([800, 1200, 1600])), int(g.choice([32, 64])), 1000 + seed)
            if family == "flat regions":
                rows = with_flat_regions(rows, seed)
            size = int(g.choice([20, 40, 60]))
            samples = [None, 5, 10][seed % 3]
            single = seed % 4 == 0
            reference = HDBSCAN(min_cluster_size=size, min_samples=samples, allow_single_cluster=single,
                                copy=True).fit_predict(rows)
            prim = hdbscan_labels(rows, size, samples, single, mst="prim")
            boruvka = hdbscan_labels(torch.from_numpy(rows).to(device), size, samples, single, mst="boruvka")
            ambiguous, regroup = ambiguous_points(rows, size, samples)
            tally["maps"] += 1
            tally["prim_differs"] += not same(reference, prim)
            tally["boruvka_differs"] += not same(reference, boruvka)
            tally["maps_with_ties"] += bool(ambiguous.any())
            tally["regroup"] += regroup
            tally["differs_outside_ties"] += not regroup and not same(reference, boruvka, ~ambiguous)
        families.append(tally)
        print(json.dumps(tally), flush=True)
    return families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tie-maps", type=int, default=100, help="random small maps per family for the tie count")
    parser.add_argument("--sklearn-large", action="store_true", help="also time scikit-learn at 128 x 128 (minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    rows = speed(device, args.repeats, args.sklearn_large)
    families = ties(device, args.tie_maps)
    info = run_machine()
    load = {"load_average_before": load_before, "load_average_after": os.getloadavg()[0],
            "minutes": (time.perf_counter() - start) / 60}
    gpu = device.type == "cuda"
    stem = "clustering_speed_gpu" if gpu else "clustering_speed"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"machine": info, "device": str(device), "repeats": args.repeats, **load, "rows": rows, "ties": families},
        indent=1))
    (RESULTS / f"{stem}.md").write_text(report(rows, families, info, device, args, load))
    print((RESULTS / f"{stem}.md").read_text())


def report(rows: list[dict], families: list[dict], info: dict, device: torch.device, args, load: dict) -> str:
    cpu_note = device.type == "cpu"
    lines = [f"# Exact HDBSCAN per feature map ({'CPU' if cpu_note else 'CUDA'})", "",
             f"{machine_line(info)} Device: {device}, {args.threads} CPU threads. Median of {args.repeats} after a "
             "warm-up (scikit-learn: 1 run); CUDA is synchronized around each timing. Prim: distances in torch, "
             "Prim on the host (`mst=\"prim\"`, the default on the CPU); Boruvka: distances and tree on the device "
             "(`mst=\"boruvka\"`, the default on a GPU); batched: `hdbscan_labels_batch`, time per map. "
             "= sklearn: the same partition as `sklearn.cluster.HDBSCAN`, noise included (ARI in brackets).", ""]
    if cpu_note:
        lines += [f"Process CPU seconds in brackets after each wall time. Load average {load['load_average_before']:.1f} "
                  f"before, {load['load_average_after']:.1f} after on {info['cpu_count']} cores: other processes "
                  "shared the CPU when above the thread count, so wall times are upper bounds.", ""]
    lines += ["| map | min cluster | scikit-learn | Prim | Boruvka | Boruvka batched (per map) | = sklearn: Prim / Boruvka |",
              "|---|---|---|---|---|---|---|"]

    def t(row: dict, key: str) -> str:
        if f"{key}_s" not in row:
            return "not run"
        cpu = f" ({row[f'{key}_cpu_s']:.3f})" if cpu_note else ""
        return f"{row[f'{key}_s']:.3f} s{cpu}"

    for r in rows:
        equal = "-"
        if "prim_equal" in r:
            equal = (f"{'yes' if r['prim_equal'] else 'no'} ({r['ari_prim']:.4f}) / "
                     f"{'yes' if r['boruvka_equal'] else 'no'} ({r['ari_boruvka']:.4f})")
            if not r["boruvka_equal"]:
                equal += f"; equal outside the {r['ties']} tied point(s): {'yes' if r['boruvka_equal_outside_ties'] else 'no'}"
        lines.append(f"| {r['map']} | {r['min_cluster_size']} | {t(r, 'sklearn')} | {t(r, 'prim')} | {t(r, 'boruvka')} | "
                     f"{t(r, 'batched_per_map')} x {r['batch']} | {equal} |")
    lines += ["", "## Ties: how often the partition differs from scikit-learn's", "",
              "Random small FOCAL-like maps (800-1600 points, 32 or 64 channels, 2% stray points; min_cluster_size "
              "20/40/60, min_samples None/5/10, allow_single_cluster on every 4th), and the same with up to three flat "
              "regions (10-150 identical rows each). Maps with ties: where `ambiguous_points` finds a point whose label "
              "depends on the order of tied merges. Regroup: where tied small pieces could even form a cluster "
              "(then any label may change). Differs outside ties: a difference on a point not flagged (should be 0).",
              "", "| maps | count | Prim differs | Boruvka differs | maps with ties | regroup | differs outside ties |",
              "|---|---|---|---|---|---|---|"]
    for f in families:
        lines.append(f"| {f['family']} | {f['maps']} | {f['prim_differs']} | {f['boruvka_differs']} | "
                     f"{f['maps_with_ties']} | {f['regroup']} | {f['differs_outside_ties']} |")
    lines += ["", f"Total run: {load['minutes']:.1f} min."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
