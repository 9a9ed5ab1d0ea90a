"""The project's GPU check, the GPU machine's CI: the paths a user runs, on the hardware they run them on,
in one call: fit, validate, test and predict through the CLI, ``pytest -m gpu``, and the clustering,
predict and training speed benchmarks (benchmarks/), each step timed and allowed to fail within a budget.

    make gpu-pack                   # here: wheels the GPU image lacks (.whl/) and real images (.gpucheck/)
    make gpu-check                  # there (device tool: carry [.whl, .gpucheck]): about 7 minutes
    python .ci/gpu_check.py --smoke # the same steps on the CPU with tiny models (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import RESULTS, SHARED, table, write_result  # noqa: E402 - the benchmarks' results folder and writer

SITE = Path("/tmp/focal-pl-site")
# fit, test and predict need these beyond the GPU image's (measured: ~9 MB for cp312)
MISSING = ("jsonargparse", "docstring_parser", "typeshed_client", "albumentations", "albucore", "pydantic",
           "pydantic_core", "annotated-types", "typing-inspection", "simsimd", "stringzilla", "typing_extensions")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
ENV = """import sys, lightning, sklearn, torch
cuda = torch.cuda.is_available()
print(sys.version.split()[0], torch.__version__, "cuda", torch.version.cuda, "sklearn", sklearn.__version__,
      "lightning", lightning.__version__)
print(torch.cuda.get_device_name(0) if cuda else "no GPU",
      torch.cuda.get_device_properties(0).total_memory // 2**20 if cuda else 0, "MiB")
"""  # the env step: versions, the GPU's name and memory
REAL = {"CASIA1_samples": 12, "CASIA2_samples": 4}  # images of each sample set (and their masks)


def pack() -> None:
    """``make gpu-pack``: the missing packages' wheels in .whl/, the first real images and masks in .gpucheck/."""
    from importlib import metadata

    specs = [f"{name}=={metadata.version(name)}" for name in MISSING]
    (ROOT / ".whl").mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    *(a for p in PLATFORMS for a in ("--platform", p)), "-d", str(ROOT / ".whl"), *specs], check=True)
    real = ROOT / ".gpucheck" / "real"
    shutil.rmtree(real, ignore_errors=True)
    copied = 0
    for source, count in ((SHARED / "real" / n, c) for n, c in REAL.items() if (SHARED / "real" / n).is_dir()):
        images = sorted((source / "images").iterdir())[:count]
        stems = {p.stem for p in images}  # their masks, and as many authentic images
        masks = [m for m in sorted((source / "masks").iterdir()) if m.stem.removesuffix("_gt") in stems]
        authentic = sorted((source / "authentic").iterdir())[:count] if (source / "authentic").is_dir() else []
        for path in images + masks + authentic:
            out = real / source.name / path.parent.name / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)
            copied += 1
    size = sum(p.stat().st_size for p in [*(ROOT / ".whl").iterdir(), *real.rglob("*")] if p.is_file())
    print(f"wheels: {', '.join(specs)}\nreal images and masks: {copied} files from {SHARED / 'real'}\n"
          f"carry [.whl, .gpucheck]: {size / 2**20:.1f} MiB (the device tool takes 64 MiB)")


def bring_wheels(env: dict[str, str]) -> str:
    """Install the carried wheels (``.whl/``) into a private folder when the image lacks them."""
    try:
        import jsonargparse  # noqa: F401
        return "jsonargparse present; no wheels needed"
    except ImportError:
        wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if not wheels:
        return "no .whl/ folder: run `make gpu-pack` where a registry is reachable, and carry .whl"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)], check=True)
    sys.path.insert(0, str(SITE))
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), env.get("PYTHONPATH", "")])
    return f"installed {len(wheels)} wheels into {SITE}"


class Check:
    """Runs the steps within a time budget and keeps what each said."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args, self.env, self.rows, self.started = args, env, [], time.perf_counter()
        (args.work / "logs").mkdir(parents=True, exist_ok=True)

    def run(self, step: str, command: list[str], timeout: float, parse=None) -> None:
        """One subprocess step: its log in work/logs, its status, seconds and parsed figures."""
        if self.args.only and step not in self.args.only:
            return
        row: dict = {"step": step, "command": " ".join(command)}
        self.rows.append(row)
        started = time.perf_counter()
        left = self.args.budget - (started - self.started)  # seconds left of the budget
        if left < min(timeout, 30):
            return row.update(status="skipped: the time budget is spent", seconds=0.0)
        try:
            out = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True,
                                 timeout=min(timeout, max(left, 30)))
            text = out.stdout + "\n" + out.stderr
            row["status"] = "ok" if out.returncode == 0 else f"failed (exit {out.returncode})"
        except subprocess.TimeoutExpired as expired:
            text, row["status"] = f"{expired.stdout or ''}\n{expired.stderr or ''}", "failed (time-out)"
        row["seconds"] = round(time.perf_counter() - started, 1)
        (self.args.work / "logs" / f"{step}.log").write_text(text)
        if row["status"] != "ok":
            row["tail"] = text.strip().splitlines()[-6:]
        row.update(parse(text) if parse else {})
        print(f"[{step}] {row['status']} in {row['seconds']} s", flush=True)


def fit_figures(text: str) -> dict:
    """Steps/s from the CLI's progress lines and the validation scores it printed."""
    rates = [float(m) for m in re.findall(r"\(([\d.]+) steps/s\)", text)]
    scores = [(int(s), float(v)) for s, v in re.findall(r"validation at step (\d+): score ([\d.]+)", text)]
    return {**({"steps_per_s": rates[-1]} if rates else {}), **({"validations": scores} if scores else {})}


def overrides(args: argparse.Namespace, model: str) -> list[str]:
    """The short-run settings of a fit: ~60 steps, two validations, 16 held-out images."""
    size = 128 if args.smoke else 1024
    train = [{"class_path": "focal_pl.data.SyntheticForgeries",
              "init_args": {"length": 40 if args.smoke else 400, "size": size, "seed": 1}}]
    common = ["--trainer.max_steps", str(args.steps), "--trainer.val_check_interval", str(args.steps // 2),
              "--trainer.log_every_n_steps", str(max(1, args.steps // 6)), "--data.val_split", "16",
              "--data.train", json.dumps(train), "--data.num_workers", "2" if args.smoke else "8",
              "--trainer.logger.init_args.save_dir", str(args.work / "runs")]
    if not args.smoke:
        return common
    extractor, clusterer = "--model.init_args.extractor.init_args.", "--model.init_args.clusterer.init_args."
    tiny = ([extractor + "size", "tiny", extractor + "img_size", str(size)] if model == "vit" else
            [extractor + "variant", "w18_small", clusterer + "grid", "16"])
    return [*common, "--trainer.accelerator", "cpu", "--trainer.precision", "32-true", "--data.image_size", str(size),
            "--data.batch_size", "2", *tiny, clusterer + "min_cluster_size", "0.1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the same steps on the CPU with tiny models")
    parser.add_argument("--steps", type=int, help="training steps of each fit (60; smoke: 4)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all steps (one device call)")
    parser.add_argument("--only", nargs="+", help="run only these steps")
    parser.add_argument("--work", type=Path, default=Path("/tmp/focal-pl-gpu-check"), help="scratch folder")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the check and the speed figures go")
    parser.add_argument("--tag", default="", help="suffix of the results files")
    parser.add_argument("--pack", action="store_true", help="make gpu-pack: the wheels and real images to carry")
    args = parser.parse_args()
    if args.pack:
        pack()
        return 0
    args.steps = args.steps or (4 if args.smoke else 60)
    shutil.rmtree(args.work, ignore_errors=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    wheels = bring_wheels(env)
    check, python = Check(args, env), sys.executable
    focal = [python, "-m", "focal_pl"]
    check.run("env", [python, "-c", ENV], 60, lambda text: {"versions": text.strip().splitlines()[:2]})
    for model in ("vit", "hrnet"):
        check.run(f"fit_{model}", [*focal, "fit", "--config", f"{model}.yaml", *overrides(args, model)],
                  600 if args.smoke else 300, fit_figures)
    runs = sorted((args.work / "runs" / "vit").glob("*/checkpoints/last.ckpt"))
    # the carried real images, else ../shared/data/real where it exists
    real = next((c for c in (ROOT / ".gpucheck" / "real", SHARED / "real") if (c / "CASIA1_samples").is_dir()), None)
    if runs and real is not None:
        def source(name: str, **init: Any) -> str:
            return json.dumps([{"class_path": f"focal_pl.data.sources.{name}", "init_args": init}])

        casia = source("CASIA", root=str(real / "CASIA1_samples"), include_authentic=True)
        folder = source("ImageFolder", root=str(real / "CASIA1_samples" / "images"))
        checkpoint = ["--config", "vit.yaml", *overrides(args, "vit"), "--ckpt_path", str(runs[0].parent.parent)]
        check.run("validate", [*focal, "validate", *checkpoint, "--data.val", casia, "--data.val_split", "null"], 120,
                  lambda text: {"scores": re.findall(r"val/score\s+([\d.]+)", text)[:1]})
        check.run("test", [*focal, "test", *checkpoint, "--data.test", casia], 120,
                  lambda text: {"report": re.findall(r"\| casia \|.*", text)[:1]})
        check.run("predict_folder", [*focal, "predict", *checkpoint, "--data.predict", folder], 120,
                  lambda text: {"predictions": re.findall(r"Predictions for .*? \(.*?\)", text)[:1]})
    else:
        check.rows.append({"step": "evaluate", "status": "skipped: no ViT checkpoint or no real images"})
    if not args.smoke:
        check.run("gpu_tests", [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"], 240,
                  lambda text: {"summary": (re.findall(r"\d+ passed.*|\d+ failed.*", text) or [""])[-1]})
        check.run("clustering", [python, "benchmarks/clustering_speed.py", "--device", "cuda", "--results",
                                 str(args.results)], 180)
    speed = [python, "benchmarks/gpu_speed.py", "--results", str(args.results), *(["--smoke"] if args.smoke else [])]
    check.run("predict", [*speed, "predict"], 180)
    check.run("training", [*speed, "training"], 300)
    return write(args, check.rows, wheels)


def write(args: argparse.Namespace, rows: list[dict], wheels: str) -> int:
    """The summary table (device included), and everything in one archive under $OUT."""
    stem = "gpu_check" + ("_smoke" if args.smoke else "") + (f"_{args.tag}" if args.tag else "")
    figures = [{k: v for k, v in r.items() if k not in ("step", "status", "seconds", "command", "tail")} for r in rows]
    lines = [f"Wheels: {wheels}.", "", *table(["step", "status", "seconds", "figures"], (
        [r["step"], r.get("status", "-"), r.get("seconds", "-"), json.dumps(f) if f else ""]
        for r, f in zip(rows, figures)))]
    for row in rows:
        lines += ["", f"{row['step']} ended with:", "```", *row["tail"], "```"] if row.get("tail") else []
    write_result(stem, {"wheels": wheels, "rows": rows}, lines, results=args.results, title=f"GPU check ({stem})")
    if os.environ.get("OUT"):
        with tarfile.open(Path(os.environ["OUT"]) / "gpu_check.tar.gz", "w:gz") as archive:
            for path in args.results.glob("*"):
                if "gpu" in path.name or path.name.startswith(("training_", "predict_", "clustering_speed")):
                    archive.add(path, arcname=f"results/{path.name}")
            archive.add(args.work / "logs", arcname="logs")
    return 1 if any(str(r.get("status", "")).startswith("failed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
