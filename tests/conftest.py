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
