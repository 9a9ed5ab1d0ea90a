"""`focal-pl env`: the code, the versions and the machine, each said for what it is."""

from __future__ import annotations

import json
import os
import re
import subprocess

import torch

from helpers.paths import ROOT


def test_env_prints_the_code_versions_and_machine(capsys):
    from focal_pl.cli import main

    assert main(["env"]) == 0
    first, second, third = capsys.readouterr().out.splitlines()[:3]
    assert first.startswith("focal-pl ") and (git_head() is None or git_head()[:10] in first)
    assert f"torch {torch.__version__.split('+')[0]}" in second and "lightning" in second and "scikit-learn" in second
    assert "cuda" not in second  # torch's build, not the machine: said beside the GPUs
    assert third.startswith("machine: ") and re.search(rf"{os.cpu_count()} cores \(BLAS: \w+ [\d.]+, \w+ kernels", third)
    if not torch.cuda.is_available():
        assert "GPUs: none (torch built for" in third
    assert main(["env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["versions"]["torch"] == torch.__version__.split("+")[0]


def git_head() -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None
