"""The 800K mix's epochs: exact repeat factors, equal DDP ranks whose union is the epoch, a seeded
order that a resumed run continues exactly, and chunk-local reading, on the chunk layout of the
scale simulation (benchmarks/data_scale.py, run as a script below) and at the paper's full size."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from focal_pl.data.shards import MixSchedule, exact_quotas

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "data_scale.py"
NAMES = ["sp_coco", "cm_coco", "cm_raise", "cm_c_raise", "casia2", "imd2020"]
PAPER_WEIGHTS = [200_000, 200_000, 200_000, 200_000, 204_920, 40_200]  # 200K sets, CASIA-v2 x 40, IMD2020 x 20
PAPER_SIZES = [200_000, 200_000, 200_000, 200_000, 5_123, 2_010]
PAPER_REPEATS = [1, 1, 1, 1, 40, 20]
# items per 128 MB chunk of each set, from the stored bytes per item the simulation measured
PER_CHUNK = [1770, 1772, 233, 355, 835, 202]
# the chunks `data shard` cut for the simulation's 20,001 items (benchmarks/results/data_scale.json, "layout")
SIMULATED = [
    [1792, 1764, 1400],
    [1769, 1761, 1426],
    [230, 243, 229, 247, 226, 249, 215, 238, 243, 249, 235, 227, 234, 228, 229, 245, 224, 252, 229, 238, 208, 38],
    [345, 369, 368, 357, 364, 362, 360, 347, 341, 348, 348, 355, 363, 329],
    [127],
    [50],
]


def chunked(items: int, per_chunk: int) -> list[int]:
    """Item counts of a set's chunks when each holds ``per_chunk`` items (the last one the rest)."""
    return [min(per_chunk, items - start) for start in range(0, items, per_chunk)]


def served(schedule: MixSchedule, replicas: int, batch: int, epoch: int = 0) -> list[list[tuple[int, int]]]:
    return [[(f, i) for _, _, f, i in schedule.keys(epoch, replicas, rank, batch)] for rank in range(replicas)]


def test_the_papers_weights_are_its_repeat_factors():
    assert exact_quotas(PAPER_SIZES, weights=PAPER_WEIGHTS) == [n * r for n, r in zip(PAPER_SIZES, PAPER_REPEATS)]
    assert exact_quotas(PAPER_SIZES, repeats=PAPER_REPEATS) == exact_quotas(PAPER_SIZES, weights=PAPER_WEIGHTS)
    assert exact_quotas([11, 16], weights=[0.5, 0.5]) == [16, 16]  # the shortest epoch showing every item
    # 7 items at a 0.3 share need an epoch of 24: 12 + 7.2 + 4.8, rounded by largest remainder
    assert exact_quotas([10, 7, 3], weights=[0.5, 0.3, 0.2]) == [12, 7, 5]
    assert exact_quotas([5, 6]) == [5, 6]
    with pytest.raises(ValueError, match="not both"):
        exact_quotas([1, 2], weights=[1, 1], repeats=[1, 1])
    with pytest.raises(ValueError, match="whole numbers"):
        exact_quotas([1, 2], repeats=[1, 1.5])


@pytest.mark.parametrize("replicas", [1, 2, 8])
def test_the_simulations_epoch_holds_the_weights_on_equal_ranks(replicas):
    schedule = MixSchedule(SIMULATED, repeats=PAPER_REPEATS, seed=3)
    labels, items = schedule.order(0)
    # the epoch's index: every item of every set exactly its repeat factor
    for folder, repeat in enumerate(PAPER_REPEATS):
        counts = np.bincount(items[labels == folder], minlength=sum(SIMULATED[folder]))
        assert counts.min() == counts.max() == repeat, NAMES[folder]
    batch = 4
    ranks = served(schedule, replicas, batch)
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) % batch == 0  # equal batch counts
    union = Counter(item for rank in ranks for item in rank)
    index = Counter(zip(labels.tolist(), items.tolist()))
    padding = union - index
    assert not index - union  # the union of the ranks is the whole epoch
    assert sum(padding.values()) == sum(map(len, ranks)) - len(labels) < replicas * batch
    weights = np.array([sum(chunks) * r for chunks, r in zip(SIMULATED, PAPER_REPEATS)], dtype=float)
    shares = np.bincount([f for f, _ in union.elements()], minlength=len(NAMES)) / sum(union.values())
    assert np.all(np.abs(shares / (weights / weights.sum()) - 1) < 0.01), shares  # within 1% of the weights


def test_the_order_is_seeded_and_a_resumed_rank_continues_it():
    chunks, repeats = SIMULATED, PAPER_REPEATS
    schedule = MixSchedule(chunks, repeats=repeats, seed=5)
    again = MixSchedule(chunks, repeats=repeats, seed=5)
    whole = list(schedule.keys(2, 2, 1, 4))
    assert list(again.keys(2, 2, 1, 4, skip=4 * 37)) == whole[4 * 37 :]  # as after 37 batches
    first, second = schedule.order(0), schedule.order(1)
    assert not np.array_equal(first[1], second[1])  # each epoch its own order ...
    assert Counter(zip(*map(np.ndarray.tolist, first))) == Counter(zip(*map(np.ndarray.tolist, second)))  # same items
    other = MixSchedule(chunks, repeats=repeats, seed=6).order(0)
    assert not np.array_equal(other[1], first[1])
    window = MixSchedule(chunks, repeats=repeats, seed=5, shuffle=False).order(0)
    assert np.array_equal(window[1], MixSchedule(chunks, repeats=repeats, seed=9, shuffle=False).order(0)[1])


def test_each_rank_reads_its_own_part_of_the_chunks():
    big = max(range(len(SIMULATED)), key=lambda f: len(SIMULATED[f]))
    chunks = SIMULATED[big]
    assert len(chunks) >= 8
    schedule = MixSchedule(SIMULATED, repeats=PAPER_REPEATS, seed=1, window=2)
    starts = np.cumsum([0, *chunks])
    replicas = 4
    touched = []
    for rank in served(schedule, replicas, 4):
        items = np.array([i for f, i in rank if f == big])
        touched.append(set(np.searchsorted(starts, items, side="right") - 1))
    assert all(len(t) <= -(-len(chunks) // replicas) + 2 * 2 for t in touched)  # its share + the edge windows
    assert set().union(*touched) == set(range(len(chunks)))


def test_the_full_paper_scale_schedule():
    layout = [chunked(n, per_chunk) for n, per_chunk in zip(PAPER_SIZES, PER_CHUNK)]
    assert [sum(chunks) for chunks in layout] == PAPER_SIZES
    schedule = MixSchedule(layout, weights=PAPER_WEIGHTS, seed=0)
    labels, items = schedule.order(0)
    assert len(labels) == 1_045_120
    assert np.bincount(labels).tolist() == [n * r for n, r in zip(PAPER_SIZES, PAPER_REPEATS)]
    lengths = {sum(1 for _ in schedule.keys(0, 8, rank, 4)) for rank in (0, 7)}
    assert lengths == {130_640}  # 1,045,120 / 8 ranks, a whole number of batches of 4


@pytest.mark.slow
def test_the_scale_simulation_runs_end_to_end(tmp_path):
    command = [sys.executable, str(SCRIPT), "--items", "120", "--batches", "4",
               "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "data_scale.json").read_text())
    assert result["stream"]["resume_identical"] and result["resume_shard"]["identical_to_unbroken"]
    assert result["stream"]["every_item_at_least_its_repeats"]
    assert result["stream"]["epoch_distinct_served"] == result["stream"]["epoch_distinct_expected"]
    assert len(set(result["stream"]["epoch_items_per_rank"])) == 1
    assert all(run["returncode"] == 0 for run in result["check"].values())
    assert result["resume_shard"]["changed_arguments"]["returncode"] == 2
    assert result["resume_shard"]["finished_rerun"]["stdout"][-1].startswith("already complete")
    assert "Machine:" in out.stdout and "| figure | measured |" in out.stdout and result["machine"]["date"]
    assert not (tmp_path / "work").exists()
