"""Every figure the README, docs/ and benchmarks/results/ quote is held by a results file: a results
page by its own JSON (``X.md`` -> ``X.json``, ``X_previous.json`` for an earlier run it quotes, and the
files it names), a table row by the records of that row's name; a guide page's figures by the results
files named within a few lines of them (figures with none nearby are settings, not measurements).
Held means: the value, or a statistic of the runs behind it (tests/helpers/figures.py), rounds to the
figure as printed."""

from __future__ import annotations

import pytest

from helpers.figures import backing, held_values, is_held, load, named_near, quoted, records_named
from helpers.paths import ROOT

RESULTS = ROOT / "benchmarks" / "results"
PAPER = ROOT / "focal_pl" / "evaluation" / "paper_results.yaml"
RESULT_PAGES = sorted(RESULTS.glob("*.md"))
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def unheld(page, files_for) -> list[str]:
    """The figures of ``page`` no results file behind them holds, as ``line: figure (row)``."""
    cache: dict = {}
    missing = []
    for line, figure, label in quoted(page):
        files = tuple(files_for(line))
        if not files:
            continue
        key = (files, label)
        if key not in cache:
            documents = [load(p) for p in files]
            records = [r for d in documents for r in records_named(d, label)] if label else []
            cache[key] = held_values(records) if records else held_values(documents)
        if not is_held(figure, cache[key]):
            missing.append(f"{line}: {figure}" + (f" ({label})" if label else ""))
    return missing


@pytest.mark.parametrize("page", RESULT_PAGES, ids=lambda p: p.name)
def test_every_figure_of_a_results_page_is_in_its_json(page):
    files = backing(page, RESULTS)
    assert files, f"{page.name}: no results JSON behind it ({page.stem}.json)"
    missing = unheld(page, lambda line: [*files, PAPER])
    assert not missing, f"{page.name}: figures no results file holds: {', '.join(missing[:12])}"


@pytest.mark.parametrize("page", GUIDES, ids=lambda p: p.name)
def test_every_figure_a_guide_quotes_is_in_the_results_it_names(page):
    missing = unheld(page, lambda line: named_near(page, line, RESULTS))
    assert not missing, f"{page.name}: figures the results named beside them do not hold: {', '.join(missing[:12])}"


def test_the_check_finds_a_figure_no_run_made(tmp_path):
    """A page quoting a figure its JSON does not hold fails, one quoting a run's mean over seeds passes."""
    import json

    (tmp_path / "toy.json").write_text(json.dumps({"runs": [
        {"method": "scl", "seed": 0, "f1": 0.61}, {"method": "scl", "seed": 1, "f1": 0.65},
        {"method": "nce", "seed": 0, "f1": 0.52}]}))
    page = tmp_path / "toy.md"
    page.write_text("| method | F1 |\n|---|---|\n| `scl` | 0.630 ± 0.020 |\n| `nce` | 0.520 |\n")
    assert unheld(page, lambda line: backing(page, tmp_path)) == []
    page.write_text("| method | F1 |\n|---|---|\n| `scl` | 0.640 |\n| `nce` | 0.630 |\n")  # 0.63 is scl's, not nce's
    assert unheld(page, lambda line: backing(page, tmp_path)) == ["3: 0.640 (scl)", "4: 0.630 (nce)"]
