"""Shared test setup: a fixed seed, two threads (as on the 2-core CI machine, so a test's speed and
numerics do not depend on the machine), and GPU tests skipped where there is no CUDA."""

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(min(2, os.cpu_count() or 1))

from helpers.images import shards  # noqa: E402,F401 - a fixture of unit and integration tests


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.gpu`` tests need CUDA: skipped (with the reason) everywhere else, CI included."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run `make gpu-check` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


SLOW_SECONDS = 10.0  # a test over this long is marked slow (`make test-quick` leaves those out)
_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report):
    """Note each test that ran over ``SLOW_SECONDS`` without the ``slow`` mark."""
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter):
    """Name the tests that should carry ``@pytest.mark.slow``, so that the quick loop stays quick."""
    if _unmarked_slow:
        terminalreporter.write_sep("-", f"over {SLOW_SECONDS:.0f} s without @pytest.mark.slow")
        for nodeid, seconds in sorted(_unmarked_slow, key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")
