"""The GPU check must not break unseen between the sessions that have a GPU: its steps run here on
the CPU with tiny models (``--smoke``), through the same commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.paths import ROOT


@pytest.mark.slow
def test_the_gpu_check_runs_its_steps_on_the_cpu(tmp_path):
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, ".ci/gpu_check.py", "--smoke", "--steps", "2", "--work", str(tmp_path),
                          "--results", str(results), "--tag", "test", "--only", "env", "fit_vit", "predict_folder",
                          "predict", "training"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {r["step"]: r for r in json.loads((results / "gpu_check_smoke_test.json").read_text())["rows"]}
    assert rows["env"]["status"] == rows["fit_vit"]["status"] == "ok"
    assert [step for step, _ in rows["fit_vit"]["validations"]] == [1, 2]  # a validation every half
    predicted = rows.get("predict_folder", {})
    assert predicted.get("status") in ("ok", None) or "skipped" in predicted.get("status", "")
    assert "| fit_vit | ok |" in (results / "gpu_check_smoke_test.md").read_text()
    assert rows["predict"]["status"] == rows["training"]["status"] == "ok"  # the speed benchmarks, tiny on the CPU
    for what, settings in (("predict", 2), ("training", 3)):  # two batch sizes; the ViT fused and timm, the HRNet
        record = json.loads((results / f"{what}_speed_smoke.json").read_text())
        assert len(record["rows"]) == settings and record["machine"]["date"]
        assert all(r.get("images_per_s", r.get("train_img_per_s", 0)) > 0 for r in record["rows"])
    assert not list((ROOT / "benchmarks" / "results").glob("*smoke*"))  # nothing beside the recorded figures

