"""Shared test setup: a fixed seed and a small thread count, as on the 2-core CI machine."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import os

# ../shared/data beside the checkout (real samples for the readers); FOCAL_SHARED_DATA overrides it
SHARED_DATA = Path(os.environ.get("FOCAL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
