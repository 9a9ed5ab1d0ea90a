"""Sweep files and ablation sets: every key they set resolves in the CLI, the grids and draws, the
rows of the paper (the runners for real: tests/integration/test_experiment_runs.py)."""

from __future__ import annotations

import json
import math
import random

import pytest
import yaml

from focal_pl.cli import main
from focal_pl.cli.shipped import configs_dir
from focal_pl.cli.ablate import variants_of
from focal_pl.cli.sweep import command_for, expand, sample
from focal_pl.cli.shipped import sweeps_dir

SWEEP_FILES = sorted(sweeps_dir().glob("*.yaml"))
ABLATION_SETS = sorted((configs_dir() / "ablation").glob("*.yaml"))


def resolved(argv: list[str], capsys) -> dict:
    """The config the CLI resolves for ``argv`` (``--print_config``)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--print_config"])
    assert stop.value.code in (0, None), capsys.readouterr().err[-2000:]
    return yaml.safe_load(capsys.readouterr().out)


def at(config: dict, dotted: str):
    """The value of a dotted key (``model.init_args.loss.init_args.temperature``)."""
    node = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part not in node and "init_args" in node:
            node = node["init_args"]  # jsonargparse's shorthand: clusterer.grid = clusterer.init_args.grid
        assert isinstance(node, dict) and part in node, f"{dotted}: no {part!r} in {node}"
        node = node[part]
    return node


def same(found, wanted) -> bool:
    """Whether a resolved config value is what a sweep / variant asked for."""
    if isinstance(wanted, str) and isinstance(found, dict) and "class_path" in found:
        return found["class_path"] == wanted  # a class given by its path alone
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(k in found and same(found[k], v) for k, v in wanted.items())
    if isinstance(wanted, float):
        return isinstance(found, (int, float)) and math.isclose(found, wanted, rel_tol=1e-9)
    return found == wanted


def test_the_sweep_and_ablation_files_are_shipped():
    assert {p.stem for p in SWEEP_FILES} >= {"temperature", "fuzziness", "temperature_fuzziness"}
    assert {p.stem for p in ABLATION_SETS} >= {"losses", "backbones", "clustering"}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_sweep_key_resolves_in_the_cli(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"] == "val/score" and "${args}" in sweep["command"]
    assert sweep["command"][:4] == ["${env}", "${interpreter}", "-m", "focal_pl"]  # no bare focal-pl on PATH
    values = expand(sweep, count=1, seed=3)[0]
    command = command_for(sweep, values)
    assert command[:3][-2:] == ["focal_pl", "fit"] or command[1:4] == ["-m", "focal_pl", "fit"]
    config = resolved(command[3:], capsys)
    for key, value in values.items():
        assert same(at(config, key), value), f"{path.name}: {key} resolved to {at(config, key)}, not {value}"


def test_grid_sweeps_expand_to_every_combination_and_random_ones_draw_inside_the_bounds():
    grid = yaml.safe_load((sweeps_dir() / "temperature_fuzziness.yaml").read_text())
    runs = expand(grid)
    sizes = [len(spec["values"]) for spec in grid["parameters"].values()]
    assert len(runs) == math.prod(sizes) and len({tuple(r.values()) for r in runs}) == len(runs)
    spec = yaml.safe_load((sweeps_dir() / "random_temperature_fuzziness.yaml").read_text())
    draws = expand(spec, count=50, seed=1)
    temperature = spec["parameters"]["model.init_args.loss.init_args.temperature"]
    assert len(draws) == 50
    assert all(temperature["min"] <= d["model.init_args.loss.init_args.temperature"] <= temperature["max"]
               for d in draws)
    log_t = [math.log(d["model.init_args.loss.init_args.temperature"]) for d in draws]
    assert min(log_t) < math.log(0.1) < max(log_t)  # spread over the decades, not clumped
    assert sample({"distribution": "int_uniform", "min": 2, "max": 2}, random.Random(0)) == 2
    with pytest.raises(ValueError, match="values"):
        expand({"method": "grid", "parameters": {"a": {"min": 0, "max": 1}}})


@pytest.mark.parametrize("path", ABLATION_SETS, ids=lambda p: p.stem)
def test_every_ablation_variant_resolves_to_what_it_names(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = yaml.safe_load(path.read_text())
    assert spec["command"] in ("fit", "validate", "test") and spec["variants"]
    for label, variant in variants_of(spec).items():
        overrides = variant["set"]
        argv = [spec["command"], *[a for c in spec["base"] for a in ("--config", c)]]
        argv += [f"--{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in overrides.items()]
        config = resolved(argv, capsys)
        for key, value in overrides.items():
            assert same(at(config, key), value), f"{path.name} {label}: {key} = {at(config, key)}"


def test_table_v_runs_what_the_paper_ran(capsys, tmp_path, monkeypatch):
    """The traditional row is a classifier on HRNet-W32 (the paper's), the ViT classifier an extra;
    every FOCAL row is a whole network whose parameters the tables list."""
    monkeypatch.chdir(tmp_path)
    spec = yaml.safe_load((configs_dir() / "ablation" / "backbones.yaml").read_text())
    variants = variants_of(spec)
    from focal_pl.evaluation import paper

    assert [v["row"] for v in variants.values() if not v["extra"]] == [
        r for r in paper.rows("table_5_backbones") if not r.startswith("FOCAL Fusion")]
    argv = ["fit", "--config", "vit.yaml", *[f"--{k}={json.dumps(v) if isinstance(v, dict) else v}"
                                              for k, v in variants["traditional"]["set"].items()]]
    model = resolved(argv, capsys)["model"]
    assert model["class_path"] == "focal_pl.module.PixelClassifier"
    assert model["init_args"]["loss"]["class_path"] == "focal_pl.losses.PixelBCELoss"
    assert model["init_args"]["extractor"]["class_path"] == "focal_pl.extractors.HRNet"
    assert model["init_args"]["extractor"]["init_args"]["variant"] == "w32"
    extra = resolved(["fit", "--config", "vit.yaml", *[f"--{k}={v}" for k, v in variants["traditional_vit"]["set"].items()]],
                     capsys)["model"]
    assert extra["init_args"]["extractor"]["init_args"]["size"] == "large" and variants["traditional_vit"]["extra"]


def test_table_vi_has_the_papers_rows_then_named_extras(capsys):
    from focal_pl.evaluation import paper

    spec = yaml.safe_load((configs_dir() / "ablation" / "losses.yaml").read_text())
    variants = variants_of(spec)
    assert [v["row"] for v in variants.values() if not v["extra"]] == paper.rows("table_6_losses")
    loss = lambda label: variants[label]["set"]["model.init_args.loss"]  # noqa: E731
    assert loss("nce")["class_path"] == "focal_pl.losses.NCELoss"  # the original NCE, one positive
    assert loss("nce_official")["class_path"] == "focal_pl.losses.InfoNCELoss" and variants["nce_official"]["extra"]
    assert loss("scl_fcm_image")["init_args"]["coefficients"] == "fcm" and loss("scl_fcm_image")["init_args"]["max_iter"] > 1
    assert loss("scl_soft_batch")["init_args"]["scope"] == "batch" and loss("scl_soft_image")["init_args"]["scope"] == "image"
    out = main(["ablate", "losses", "--dry-run"])
    printed = capsys.readouterr().out
    assert out == 0 and "[4/10] nce (NCE (original, [40])) -> runs/ablations/losses/nce" in printed
    assert "(extra)" not in printed and "nce_official (NCE as the official code computes it (all positives, averaged), extra)" in printed
    assert "then: " in printed and "--data.test <1 set(s)>" in printed


def test_unknown_variant_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["ablate", "losses", "--only", "scl_typo"]) == 2
    assert "no variant(s) ['scl_typo']" in capsys.readouterr().err


