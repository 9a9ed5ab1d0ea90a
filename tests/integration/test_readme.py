"""The README's Python, run as pasted in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.docs import blocks
from helpers.paths import ENV, ROOT

README = ROOT / "README.md"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks(README, "python"))))
def test_the_readmes_python_runs_as_pasted(index, tmp_path):
    code = blocks(README, "python")[index]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Tip:" not in out.stdout + out.stderr, "Lightning's advertising tips are printed"
    assert "Traceback" not in out.stderr
