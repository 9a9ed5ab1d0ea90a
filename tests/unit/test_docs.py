"""The README and docs/ as a newcomer uses them: the Python snippets run as pasted, every `focal-pl
fit` line parses (with --print_config), every command named exists, every link leads somewhere,
and the README stays short."""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers.docs import blocks, shell_lines
from helpers.paths import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_every_command_named_in_the_docs_exists():
    from focal_pl.cli import COMMANDS

    commands = {line.split()[1] for page in PAGES for line in shell_lines(page) if line.startswith("focal-pl ")}
    assert commands, "no focal-pl command found in the docs"
    unknown = sorted(c for c in commands if c not in COMMANDS)
    assert not unknown, f"the docs name commands focal-pl does not have: {unknown}"


FITS = sorted({line for page in PAGES for line in shell_lines(page) if line.startswith("focal-pl fit ")
               and "--help" not in line and "--print_config" not in line})


def test_every_fit_line_in_the_docs_parses(tmp_path, monkeypatch, capsys):
    from focal_pl.cli import main

    monkeypatch.chdir(tmp_path)
    assert len(FITS) >= 5
    failures = []
    for line in FITS:
        argv = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", line)][1:]
        argv = [a.replace("$RESUME", "") for a in argv if a != "$RESUME"]
        try:
            code = main([*argv, "--print_config"])
        except SystemExit as stop:
            code = stop.code or 0
        printed = capsys.readouterr()
        if code != 0:
            failures.append(f"{line}\n  -> {printed.err.strip().splitlines()[-1:]}")
    assert not failures, "\n".join(failures)


def test_every_link_and_results_file_named_exists():
    missing = []
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
        for name in re.findall(r"benchmarks/results/([\w.-]+\.md)", text):
            if not (ROOT / "benchmarks" / "results" / name).exists():
                missing.append(f"{page.name}: benchmarks/results/{name}")
        for name in re.findall(r"`(benchmarks/[\w-]+\.py)`", text):
            if not (ROOT / name).exists():
                missing.append(f"{page.name}: {name}")
    assert not missing, missing


def normalized(lines: list[str]) -> list[str]:
    """A summary's lines with what changes from run to run (numbers, paths, the extractor) made alike."""
    out = []
    for line in lines:
        line = re.sub(r"\S*/\S*", "PATH", line)
        line = re.sub(r"\d[\d,.]*", "N", line)
        out.append(re.sub(r"extractor: \w+", "extractor: X", line))
    return out


def test_the_readmes_demo_output_is_what_a_fit_prints(tmp_path, monkeypatch, capsys):
    from focal_pl.cli.lightning import run_lightning
    from helpers.paths import tiny_args

    block = next(b for b in blocks(README, "") if b.startswith("Run folder:"))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    run_lightning(tiny_args("fit", Path("runs")))
    printed = capsys.readouterr().out
    summary = printed[printed.index("Run folder:"):].strip().splitlines()
    assert normalized(summary) == normalized(block.strip().splitlines()), "\n".join(summary)


def test_every_key_of_the_official_code_table_is_accepted(capsys, tmp_path, monkeypatch):
    """docs/method.md section 8 names, for each official choice, the key that selects it: all of them
    together parse over vit.yaml and set what the table says."""
    import shlex

    import pytest
    import yaml

    from focal_pl.cli import main

    text = (ROOT / "docs" / "method.md").read_text().split("## 8. What the official code does")[1]
    keys = [shlex.split(k) for k in re.findall(r"`(--[^`]+)`", text) if not k.startswith("--config official")]
    assert len(keys) >= 8
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config", "vit.yaml", *[a for key in keys for a in key], "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert model["loss"]["class_path"] == "focal_pl.losses.InfoNCELoss"
    assert model["clusterer"]["init_args"]["algorithm"] == "cosine_kmeans" and model["val_resolution"] == "grid"
    assert config["trainer"]["precision"] == "32-true" and config["testing"]["resolution"] == "grid"
    assert config["data"]["train"]["init_args"]["repeats"] == [1, 1, 1, 40, 20]  # data/official_mix.yaml
