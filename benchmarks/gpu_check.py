"""The project's GPU check: the paths a user runs, on the hardware they run them on, in one call: fit,
validate, test and predict through the CLI, ``pytest -m gpu``, and the clustering, predict and training
speed benchmarks (``--speed``), each step timed and allowed to fail within a time budget.

    make gpu-pack                   # here: wheels the GPU image lacks (.whl/) and real images (.gpucheck/)
    make gpu-check                  # there (device tool: carry [.whl, .gpucheck]): about 7 minutes
    python benchmarks/gpu_check.py --smoke      # the same steps on the CPU with tiny models (a test runs it)
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
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, SHARED, arguments, median_time, show, table, times, write_result

ROOT = Path(__file__).resolve().parents[1]
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
VITS = {"vit_l": "large", "vit_b": "base", "vit_tiny": "tiny"}
HRNETS = {"hrnet_w32": "w32", "hrnet_w18_small": "w18_small"}
OPTIONS = ("channels_last", "compile", "fused_adam")
# the speed benchmarks' settings on the GPU, and in the smoke check
PREDICT = {"device": "cuda", "model": "vit_l", "size": 1024, "images": 32, "batches": [1, 8], "workers": 4,
           "tag": "gpu"}
PREDICT_SMOKE = {**PREDICT, "device": "cpu", "model": "vit_tiny", "size": 128, "images": 4, "batches": [1, 2],
                 "workers": 0, "tag": "smoke"}
TRAINING = {"device": "cuda", "models": ["vit_l", "hrnet_w32"], "attention": ["fused", "timm"], "size": 1024,
            "options": [[], ["compile", "fused_adam"]], "batch": 4, "steps": 10, "warmup": 3, "precision": "bf16"}
TRAINING_SMOKE = {**TRAINING, "device": "cpu", "models": ["vit_tiny", "hrnet_w18_small"], "size": 64,
                  "options": [[]], "batch": 2, "steps": 2, "warmup": 1, "precision": "32"}


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


def extractor(name: str, size: int, attention: str = "fused") -> object:
    """A SAM ViT (``vit_*``, at ``size`` px, with that attention) or an HRNet (``hrnet_*``), untrained."""
    from focal_pl.extractors import HRNet, SamViT

    return SamViT(VITS[name], img_size=size, attention=attention) if name in VITS else HRNet(HRNETS[name])


def predict_speed(smoke: bool) -> None:
    """``focal-pl predict`` end to end on random-texture JPEGs (the ``PredictionWriter``'s seconds, after a warm-up
    run; untrained: speed does not depend on the weights), and the median ms of the extractor alone."""
    import numpy as np
    import torch
    from PIL import Image

    from focal_pl.cli.lightning import run_lightning

    s, rows = PREDICT_SMOKE if smoke else PREDICT, []
    gpu, stem = s["device"] == "cuda", f"predict_speed_{s['tag']}"

    def seconds(folder: Path, out: Path, batch: int) -> float:
        cli = run_lightning([
            "predict", "--config", "vit.yaml", "--model.init_args.extractor.init_args.size", VITS[s["model"]],
            "--run.allow_untrained", "true", "--model.init_args.extractor.init_args.img_size", str(s["size"]),
            "--data.image_size", str(s["size"]), "--trainer.accelerator", "gpu" if gpu else "cpu",
            "--trainer.precision", "bf16-mixed" if gpu else "32-true", "--trainer.enable_progress_bar", "false",
            "--data.eval_batch_size", str(batch), "--data.num_workers", str(s["workers"]), "--data.predict",
            json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder", "init_args": {"root": str(folder)}}]),
            "--prediction.output_dir", str(out), "--trainer.logger.init_args.save_dir", str(out)])
        return next(c for c in cli.trainer.callbacks if type(c).__name__ == "PredictionWriter").seconds

    with tempfile.TemporaryDirectory() as tmp:
        folder, rng = Path(tmp) / "images", np.random.default_rng(0)
        folder.mkdir()
        for i in range(s["images"]):  # decode cost like real photos of that size
            base = rng.integers(0, 255, (s["size"] // 8, s["size"] // 8, 3), dtype=np.uint8)
            Image.fromarray(base).resize((s["size"],) * 2, Image.BILINEAR).save(folder / f"img{i:04d}.jpg", quality=90)
        seconds(folder, Path(tmp) / "warmup", s["batches"][0])  # compile caches, cudnn autotune
        for batch in s["batches"]:
            took = seconds(folder, Path(tmp) / f"b{batch}", batch)
            rows.append({"batch": batch, "images": s["images"], "seconds": took, "images_per_s": s["images"] / took,
                         "ms_per_image": 1000 * took / s["images"]})
    model = extractor(s["model"], s["size"]).to(s["device"]).eval()
    image = torch.rand(1, 3, s["size"], s["size"], device=s["device"])
    with torch.inference_mode(), torch.autocast(s["device"], dtype=torch.bfloat16, enabled=gpu):
        features = 1000 * median_time(lambda: model(image), 5, warmup=3, sync=torch.cuda.synchronize if gpu else None)
    write_result(stem, {"args": s, "rows": rows, "feature_ms": features}, [
        f"{s['images']} JPEGs of {s['size']} px, model {s['model']} (untrained), device {s['device']}, "
        f"{s['workers']} loader workers; the extractor alone: {features:.1f} ms per image.", "",
        *table(["batch", "images/s", "ms per image"],
               ((r["batch"], f"{r['images_per_s']:.2f}", f"{r['ms_per_image']:.1f}") for r in rows))],
        title=f"focal-pl predict, end to end ({stem})")


def measure(name: str, attention: str | None, options: list[str], s: dict) -> dict:
    """Training images/s (SCL, Adam, a fixed batch of random images with a forged rectangle each, after warm-up
    steps), peak device memory, and the median ms of one image in eval mode."""
    import torch

    from focal_pl.losses import SoftContrastiveLoss

    device, size, batch = torch.device(s["device"]), s["size"], s["batch"]
    torch.manual_seed(0)
    layout = torch.channels_last if "channels_last" in options else torch.contiguous_format
    model = extractor(name, size, attention or "fused").to(device).to(memory_format=layout)
    loss_fn, forward = SoftContrastiveLoss(), torch.compile(model) if "compile" in options else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True if "fused_adam" in options else None)
    images = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=layout)
    masks = torch.zeros(batch, 1, size, size, device=device)
    masks[:, :, size // 4: size // 2, size // 3: 2 * size // 3] = 1
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=s["precision"] == "bf16")  # noqa: E731

    def step() -> None:
        with autocast():
            loss = loss_fn(forward(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with autocast():
            forward(images[:1])

    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    train_seconds = sum(times(step, s["steps"], warmup=s["warmup"], sync=sync))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    model.eval()
    with torch.inference_mode():
        infer_s = median_time(infer, s["steps"], warmup=s["warmup"], sync=sync)
    return {"model": name, "attention": attention, "size": size, "batch": batch, "precision": s["precision"],
            **{option: option in options for option in OPTIONS}, "steps": s["steps"],
            "train_img_per_s": batch * s["steps"] / train_seconds, "peak_gib": peak, "infer_ms": 1000 * infer_s,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def training_speed(smoke: bool) -> None:
    """``measure`` of every (model, attention, option set) of the GPU's settings, or the smoke check's (CPU)."""
    import torch

    s, rows = TRAINING_SMOKE if smoke else TRAINING, []
    for name in s["models"]:
        for attention in s["attention"] if name in VITS else [None]:
            for options in s["options"]:
                rows.append(show(measure(name, attention, options, s)))
                if s["device"] == "cuda":
                    torch.cuda.empty_cache()
    stem = "training_speed_" + ("smoke" if smoke else "gpu")
    header = ["model", "attention", "size", "batch", "precision", "options", "train img/s", "peak GiB",
              "infer ms / image", "params M"]
    cells = ([r["model"], r["attention"] or "-", r["size"], r["batch"], r["precision"],
              ", ".join(k for k in OPTIONS if r[k]) or "eager", f"{r['train_img_per_s']:.2f}",
              "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}", f"{r['infer_ms']:.1f}", f"{r['params_m']:.1f}"]
             for r in rows)
    note = [] if s["device"] == "cuda" else ["CPU run: a smoke test of the benchmark, not a GPU figure.", ""]
    write_result(stem, {"rows": rows}, [*note, *table(header, cells)], title=f"Training and inference speed ({stem})")


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
    args = arguments(__doc__, smoke=(False, "the same steps on the CPU with tiny models"),
                     steps=(int, "training steps of each fit (60; smoke: 4)"),
                     budget=(450.0, "seconds for all steps (one device call)"), only=([str], "run only these steps"),
                     work=Path("/tmp/focal-pl-gpu-check"), tag=("", "suffix of the results files"),
                     pack=(False, "make gpu-pack: the wheels and real images to carry"),
                     speed=(str, "only this speed benchmark (a step)", ["predict", "training"]))
    if args.pack:
        pack()
        return 0
    if args.speed:
        (predict_speed if args.speed == "predict" else training_speed)(args.smoke)
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
        check.run("clustering", [python, "benchmarks/clustering_speed.py", "--device", "cuda"], 180)
    smoke = ["--smoke"] if args.smoke else []
    check.run("predict", [python, "benchmarks/gpu_check.py", "--speed", "predict", *smoke], 180)
    check.run("training", [python, "benchmarks/gpu_check.py", "--speed", "training", *smoke], 300)
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
    write_result(stem, {"wheels": wheels, "rows": rows}, lines, title=f"GPU check ({stem})")
    if os.environ.get("OUT"):
        with tarfile.open(Path(os.environ["OUT"]) / "gpu_check.tar.gz", "w:gz") as archive:
            for path in RESULTS.glob("*"):
                if "gpu" in path.name or path.name.startswith(("training_", "predict_", "clustering_speed")):
                    archive.add(path, arcname=f"results/{path.name}")
            archive.add(args.work / "logs", arcname="logs")
    return 1 if any(str(r.get("status", "")).startswith("failed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
