"""Exact HDBSCAN per feature map: focal-pl against scikit-learn's public class, side by side (the ratio,
where the time goes, 128 x 128 with Prim and Boruvka's memory, ties); with ``--device cuda``, on the device.

    python benchmarks/clustering_speed.py [--repeats 5] [--tie-maps 100] [--device cpu|cuda]
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

from focal_pl.clustering import fast_hdbscan as fast
from focal_pl.clustering.fast_hdbscan import arrays, bounds, core_distance, hdbscan_labels, prim, sklearn_tree
from focal_pl.training.provenance import machine

from common import RESULTS, child_json, median_time, parser, show, status_bytes, table, timed, write_result

# the feature maps and the tie diagnostics are the tests' (section 4 needs the latter), not the package's
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.feature_maps import focal_like, same_partition as same  # noqa: E402
from helpers.hdbscan_ties import ambiguous_points  # noqa: E402

SIDE, DIM, SIZE = 64, 256, 200
LARGE_SIDE, LARGE_SIZE = 128, 800
KINDS = ("forged", "two_forged", "authentic", "trained_2", "trained_3", "trained_5")
# the path this replaced (commit ec933da: a float64 matrix product, top-k, reachability passes, Prim
# on the float64 matrix), profiled stage by stage on this machine before the change (load 0.8)
BEFORE = {"norms (float64)": 0.026, "float64 matrix product (baddbmm)": 0.200, "mirror": 0.020,
          "top-k core distances": 0.149, "near-duplicate fix": 0.023, "reachability max (2 passes)": 0.024,
          "square root": 0.032, "Prim on the float64 matrix": 0.028,
          "_process_mst + tree_to_labels (scikit-learn)": 0.003}


def with_flat_regions(rows: np.ndarray, seed: int) -> np.ndarray:
    """Up to three disjoint flat regions: each repeats one feature vector exactly (10-150 rows)."""
    g = np.random.default_rng(seed)
    rows = rows.copy()
    sizes = g.integers(10, 150, size=int(g.integers(1, 4)))
    for group in np.split(g.choice(len(rows), int(sizes.sum()), replace=False), np.cumsum(sizes)[:-1]):
        rows[group] = rows[group[0]]
    return rows


def ratio(repeats: int) -> list[dict]:
    """Per map kind: medians of ``repeats`` interleaved runs of each side, the load, equal labels."""
    out = []
    hdbscan_labels(focal_like("forged", SIDE * SIDE, DIM, 99), SIZE, mst="prim")  # warm-up (imports, BLAS)
    for seed, kind in enumerate(KINDS):
        rows = focal_like(kind, SIDE * SIDE, DIM, seed)
        calls = {"sklearn": lambda: HDBSCAN(min_cluster_size=SIZE, copy=True).fit_predict(rows),
                 "ours": lambda: hdbscan_labels(rows, SIZE, mst="prim")}
        runs, labels, loads = {"sklearn": [], "ours": []}, {}, [os.getloadavg()[0]]
        for r in range(repeats):
            for who in ("sklearn", "ours") if r % 2 == 0 else ("ours", "sklearn"):
                wall, cpu, labels[who] = timed(calls[who])
                runs[who].append((wall, cpu))
            loads.append(os.getloadavg()[0])
        reference = labels["sklearn"]
        row = dict(map=kind, points=len(rows), clusters=int(reference.max() + 1), noise=int((reference == -1).sum()))
        for who, timings in runs.items():
            row.update({f"{who}_s": statistics.median(w for w, _ in timings), f"{who}_runs_s": [w for w, _ in timings],
                        f"{who}_cpu_s": statistics.median(c for _, c in timings)})
        row.update(load_min=min(loads), load_max=max(loads), equal=same(reference, labels["ours"]),
                   identical=bool(np.array_equal(reference, labels["ours"])), ratio=row["sklearn_s"] / row["ours_s"])
        out.append(show(row))
    return out


def stages(repeats: int) -> dict:
    """Medians of the Prim path's stages on one map (the internals ``hdbscan_labels`` runs)."""
    rows = focal_like("two_forged", SIDE * SIDE, DIM, 1)
    runs: dict[str, list[float]] = {}

    def prepare() -> tuple:
        x = arrays._host_rows(rows)
        return x, np.ascontiguousarray(x.T), bounds._Bounds(x)

    def labels(mst: dict) -> np.ndarray:
        np.sqrt(mst["distance"], out=mst["distance"])
        return sklearn_tree.labels_from_prim_tree(mst, SIZE)

    for _ in range(repeats + 1):  # the first run warms up
        t = {}
        t["centre, norms, bounds"], _, (x, xt, bound) = timed(prepare)
        t["float32 syrk + mirror (N x N bounds)"], _, lower = timed(lambda: bounds._dense_lower_bounds(bound))
        t["core distances (partition, band, exact sums)"], _, core2 = timed(
            lambda: core_distance._dense_core_squares(x, xt, lower, bound, SIZE))
        t["certified Prim"], _, mst = timed(lambda: prim._certified_prim(x, xt, lower, core2, bound))
        bounds._keep_workspace(lower)
        t["_process_mst + tree_to_labels (scikit-learn)"] = timed(lambda: labels(mst))[0]
        for name, seconds in t.items():
            runs.setdefault(name, []).append(seconds)
    return {name: statistics.median(values[1:]) for name, values in runs.items()}


def boruvka_formula(n: int, rows_per_chunk: int) -> int:
    """Boruvka's peak memory by chunks (bytes), by the formula of ``fast_hdbscan``."""
    return fast.CHUNK_BYTES_PER_PAIR * rows_per_chunk * n + n * (DIM * 12 + 200) + fast.EXACT_BYTES


def large(budget: int) -> dict:
    """128 x 128: Prim here, Boruvka in a fresh process (``child_boruvka``); 256 x 256 extrapolated."""
    n = LARGE_SIDE * LARGE_SIDE
    wall, cpu, labels = timed(lambda: hdbscan_labels(focal_like("two_forged", n, DIM, 7), LARGE_SIZE, mst="prim"))
    out = dict(points=n, prim_s=wall, prim_cpu_s=cpu, prim_bytes=4 * n * n)
    measured = child_json(__file__, "--child-boruvka", str(budget))
    boruvka = np.asarray(measured.pop("labels"))
    out.update(measured, boruvka_partition_equals_prim=bool(same(labels, boruvka)))
    big, scale = 4 * n, 16  # N^2 work: 256 x 256 has 4 x the points of 128 x 128
    out["extrapolated_256"] = dict(points=big, prim_s=out["prim_s"] * scale, prim_bytes=4 * big * big,
                                   boruvka_s=out["boruvka_s"] * scale,
                                   boruvka_peak_formula_bytes={r: boruvka_formula(big, r) for r in (1024, 4096)})
    return show(out)


def child_boruvka(budget: int) -> None:
    """In a fresh process: Boruvka by chunks on the 128 x 128 map, its time and peak RSS above the
    process's before the call (VmHWM, reset first: a child's ``ru_maxrss`` starts from its parent's)."""
    torch.set_num_threads(2)
    n = LARGE_SIDE * LARGE_SIDE
    rows = torch.from_numpy(focal_like("two_forged", n, DIM, 7))
    hdbscan_labels(rows[:512], 20, mst="boruvka")  # warm-up: imports, allocator
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) back to the current resident size
    before, chunk = status_bytes("VmRSS"), fast.chunk_rows(n, DIM, budget)
    wall, cpu, labels = timed(lambda: hdbscan_labels(rows, LARGE_SIZE, mst="boruvka", memory_budget=budget))
    print(json.dumps(dict(boruvka_s=wall, boruvka_cpu_s=cpu, budget_bytes=budget, rows_per_chunk=chunk,
                          boruvka_peak_rss_bytes=status_bytes("VmHWM") - before,
                          boruvka_peak_formula_bytes=boruvka_formula(n, chunk), labels=labels.tolist())))


def ties(count: int) -> list[dict]:
    """Over ``count`` random small maps of each family: how often each path differs from scikit-learn."""
    families = []
    for family in ("continuous", "flat regions"):
        tally = dict(family=family, maps=count, prim_differs=0, boruvka_differs=0, maps_with_ties=0, regroup=0,
                     differs_outside_ties=0)
        for seed in range(count):
            g = np.random.default_rng(1000 + seed)
            kind = ("forged", "two_forged", "authentic")[seed % 3]
            rows = focal_like(kind, int(g.choice([800, 1200, 1600])), int(g.choice([32, 64])), 1000 + seed)
            rows = with_flat_regions(rows, seed) if family == "flat regions" else rows
            size, samples, single = int(g.choice([20, 40, 60])), [None, 5, 10][seed % 3], seed % 4 == 0
            reference = HDBSCAN(min_cluster_size=size, min_samples=samples, allow_single_cluster=single,
                                copy=True).fit_predict(rows)
            prim = hdbscan_labels(rows, size, samples, single, mst="prim")
            boruvka = hdbscan_labels(torch.from_numpy(rows), size, samples, single, mst="boruvka")
            ambiguous, regroup = ambiguous_points(rows, size, samples)
            found = {"prim_differs": not same(reference, prim), "boruvka_differs": not same(reference, boruvka),
                     "maps_with_ties": bool(ambiguous.any()), "regroup": regroup,
                     "differs_outside_ties": not regroup and not same(reference, boruvka, ~ambiguous)}
            tally.update({key: tally[key] + value for key, value in found.items()})
        families.append(show(tally))
    return families


def gpu(device: torch.device, repeats: int) -> list[dict]:
    """Boruvka on the device: per 64 x 64 map, a batch of 16, and one 256 x 256 map by chunks."""
    out = []
    for side, size, batch in ((64, 200, 16), (256, 800, 1)):
        n = side * side
        maps = torch.from_numpy(np.stack([focal_like(KINDS[s % 3], n, DIM, s) for s in range(batch)])).to(device)
        fast.hdbscan_labels_batch(maps[:1, :512], 20)  # warm-up
        torch.cuda.reset_peak_memory_stats(device)
        seconds = median_time(lambda: fast.hdbscan_labels_batch(maps, size), repeats,
                              sync=lambda: torch.cuda.synchronize(device))
        out.append(show(dict(map=f"{side} x {side} x {DIM}", batch=batch, per_map_s=seconds / batch,
                             peak_bytes=torch.cuda.max_memory_allocated(device))))
    return out


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--device", default="cpu", help="cpu: the comparison with scikit-learn; cuda: on the GPU")
    options.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    options.add_argument("--repeats", type=int, default=5, help="timed runs of each side")
    options.add_argument("--tie-maps", type=int, default=100, help="random small maps per family for the tie count")
    options.add_argument("--budget", type=int, default=1 << 30, help="Boruvka's memory budget at 128 x 128 (bytes)")
    options.add_argument("--results", type=Path, default=RESULTS, help="where the .json and .md go")
    options.add_argument("--child-boruvka", type=int, help=argparse.SUPPRESS)  # the budget, in the child process
    args = options.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_boruvka:
        return child_boruvka(args.child_boruvka)
    device, info = torch.device(args.device), machine()  # with the BLAS the bounds' product runs on
    if device.type == "cuda":
        rows = gpu(device, args.repeats)
        write_result("clustering_speed_gpu", {"machine": info, "rows": rows}, table(
            ["map", "batch", "per map", "peak device memory"],
            ([r["map"], r["batch"], f"{r['per_map_s']:.3f} s", f"{r['peak_bytes'] / 2**30:.2f} GiB"] for r in rows)),
            results=args.results, title=f"Exact HDBSCAN on {device} (Boruvka by chunks)")
        return
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    ratios, profile, big, families = ratio(args.repeats), stages(args.repeats), large(args.budget), ties(args.tie_maps)
    load = dict(load_average_before=load_before, load_average_after=os.getloadavg()[0],
                minutes=(time.perf_counter() - started) / 60)
    write_result("clustering_speed", {
        "machine": info, "threads": args.threads, "repeats": args.repeats, **load, "ratio": ratios,
        "stages_s": profile, "stages_before_s": BEFORE, "large": big, "ties": families},
        [f"{args.threads} CPU threads, BLAS {info['blas']}; load average {load_before:.1f} before, "
         f"{load['load_average_after']:.1f} after; {load['minutes']:.1f} min.", "",
         *tables(ratios, profile, big, families)], results=args.results)


def tables(ratios: list[dict], profile: dict, big: dict, families: list[dict]) -> list[str]:
    """The four sections' tables: the ratio, the stages (now and before), 128 x 128 and 256 x 256, the ties."""
    ms = lambda when, stages: [*((f"{when}: {k}", f"{1000 * v:.1f}") for k, v in stages.items()),  # noqa: E731
                               (f"{when}: total", f"{1000 * sum(stages.values()):.1f}")]
    ext, gib = big["extrapolated_256"], lambda n: f"{n / 2**30:.2f} GiB"  # noqa: E731
    return [
        f"1. 64 x 64 x 256 maps, min_cluster_size {SIZE} (medians, CPU s in brackets): ours "
        f"{statistics.median(r['ratio'] for r in ratios):.1f}x faster (median over maps)", "",
        *table(["map", "clusters / noise", "scikit-learn", "ours", "ratio", "load", "equal / identical"], (
            [r["map"], f"{r['clusters']} / {r['noise']}", f"{r['sklearn_s']:.2f} s ({r['sklearn_cpu_s']:.2f})",
             f"{1000 * r['ours_s']:.0f} ms ({1000 * r['ours_cpu_s']:.0f})", f"{r['ratio']:.1f}x",
             f"{r['load_min']:.1f}-{r['load_max']:.1f}", f"{r['equal']} / {r['identical']}"] for r in ratios)),
        "", "2. Where the time goes on one map (before: commit ec933da, float64 throughout)", "",
        *table(["stage", "ms"], ms("now", profile) + ms("before", BEFORE)), "",
        f"3. N = {big['points']} (128 x 128, min_cluster_size {LARGE_SIZE}, one run) and 256 x 256 extrapolated "
        f"(N^2 work: x16); Boruvka's partition equals Prim's: {big['boruvka_partition_equals_prim']}", "",
        *table(["path", "time (CPU s)", "memory", "256 x 256"], [
            ["Prim", f"{big['prim_s']:.1f} s ({big['prim_cpu_s']:.1f})", "bounds " + gib(big["prim_bytes"]),
             f"~{ext['prim_s']:.0f} s, bounds {gib(ext['prim_bytes'])}"],
            [f"Boruvka, budget {gib(big['budget_bytes'])}: {big['rows_per_chunk']} rows per chunk",
             f"{big['boruvka_s']:.1f} s ({big['boruvka_cpu_s']:.1f})",
             f"peak RSS {gib(big['boruvka_peak_rss_bytes'])}, formula {gib(big['boruvka_peak_formula_bytes'])}",
             f"~{ext['boruvka_s']:.0f} s, formula " + ", ".join(
                 f"{gib(b)} at R = {r}" for r, b in ext["boruvka_peak_formula_bytes"].items())]]), "",
        "4. Ties: how often the partition differs from scikit-learn's", "",
        *table(list(families[0]), (f.values() for f in families))]


if __name__ == "__main__":
    main()
