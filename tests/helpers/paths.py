"""Where the tests' files are, and how a test runs ``focal-pl`` in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CONFIGS = TESTS / "configs"
TINY = str(CONFIGS / "tiny.yaml")  # laid over demo.yaml: a few steps on a few small images
TINY_DATA = str(CONFIGS / "tiny_data.yaml")  # tiny.yaml without its model
# ../shared/data beside the checkout (real samples for the readers); FOCAL_SHARED_DATA overrides it
SHARED_DATA = Path(os.environ.get("FOCAL_SHARED_DATA", ROOT.parent / "shared" / "data"))
# a subprocess of the tests: one thread (two processes share the 2 CI cores), the helpers importable
ENV = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}


def tiny_args(verb: str, root: Path, *extra: str) -> list[str]:
    """``focal-pl VERB`` of demo.yaml + tiny.yaml writing under ``root`` (the arguments after ``focal-pl``)."""
    return [verb, "--config", "demo.yaml", "--config", TINY, "--trainer.logger.init_args.save_dir", str(root), *extra]


def focal_pl(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """``python -m focal_pl ARGS`` in a process of its own, its output captured."""
    return subprocess.run([sys.executable, "-m", "focal_pl", *args], capture_output=True, text=True,
                          timeout=timeout, env=kwargs.pop("env", ENV), **kwargs)


def said(stderr: str) -> list[str]:
    """The non-empty lines a command wrote to stderr."""
    return [line for line in stderr.splitlines() if line.strip()]
