"""The project's GPU check: the paths a user runs, on the hardware they run them on, in one call.

    make gpu-pack                   # here: wheels the GPU image lacks (.whl/) and real images (.gpucheck/)
    make gpu-check                  # there (device tool: carry [.whl, .gpucheck]): about 7 minutes
    python benchmarks/gpu_check.py --smoke      # the same steps on the CPU with tiny models (a test runs it)

Steps, in order, each timed and each allowed to fail without stopping the others (a step that no
longer fits the time budget is skipped and said so):
  env        torch / CUDA / scikit-learn versions, the GPU's name and memory
  fit_vit    ``focal-pl fit --config vit.yaml``: ~60 steps, a validation every 30 (and the untrained one)
  fit_hrnet  the same with hrnet.yaml
  validate, test, predict_folder   with the ViT checkpoint on real CASIA images (and authentic ones)
  gpu_tests  ``pytest -m gpu``: the GPU paths of the test suite (clustering, attention, module)
  clustering benchmarks/clustering_speed.py on the device (against scikit-learn, same partition)
  predict    benchmarks/predict_speed.py (images/s and ms per image, end to end)
  training   benchmarks/training_speed.py (ViT-L fused / timm attention, compile, fused Adam; HRNet)

Writes benchmarks/results/gpu_check[_<tag>].md / .json (with the device) beside the benchmarks'
own result files, and, when ``$OUT`` is set (the device tool), one archive of all of it there.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SITE = Path("/tmp/focal-pl-site")


def bring_wheels(env: dict[str, str]) -> str:
    """Install the carried wheels (``.whl/``) into a private folder when the image lacks them."""
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    try:
        import jsonargparse  # noqa: F401
        return "jsonargparse present; no wheels needed"
    except ImportError:
        pass
    if not wheels:
        return "no .whl/ folder: run `make gpu-pack` where a registry is reachable, and carry .whl"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)], check=True)
    sys.path.insert(0, str(SITE))
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), env.get("PYTHONPATH", "")])
    return f"installed {len(wheels)} wheels into {SITE}"


def real_data(smoke: bool) -> Path | None:
    """The carried real images, else ../shared/data/real (where it exists), else None."""
    for candidate in (ROOT / ".gpucheck" / "real", ROOT.parent / "shared" / "data" / "real"):
        if (candidate / "CASIA1_samples").is_dir():
            return candidate
    return None


class Check:
    """Runs the steps within a time budget and keeps what each said."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], work: Path) -> None:
        self.args, self.env, self.work = args, env, work
        self.started = time.perf_counter()
        self.rows: list[dict] = []
        (work / "logs").mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.started)

    def run(self, step: str, command: list[str], timeout: float, parse=None) -> dict:
        """One subprocess step: its log in work/logs, its status, seconds and parsed figures."""
        row: dict = {"step": step, "command": " ".join(command)}
        if self.args.only and step not in self.args.only:
            return row
        if self.left() < min(timeout, 30):
            row.update(status="skipped: the time budget is spent", seconds=0.0)
            self.rows.append(row)
            return row
        log = self.work / "logs" / f"{step}.log"
        started = time.perf_counter()
        try:
            out = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True,
                                 timeout=min(timeout, max(self.left(), 30)))
            text = out.stdout + "\n" + out.stderr
            row["status"] = "ok" if out.returncode == 0 else f"failed (exit {out.returncode})"
        except subprocess.TimeoutExpired as expired:
            text = f"{expired.stdout or ''}\n{expired.stderr or ''}"
            text = text if isinstance(text, str) else str(text)
            row["status"] = "failed (time-out)"
        row["seconds"] = round(time.perf_counter() - started, 1)
        log.write_text(text)
        if row["status"] != "ok":
            row["tail"] = text.strip().splitlines()[-6:]
        if parse is not None:
            row.update(parse(text))
        self.rows.append(row)
        print(f"[{step}] {row['status']} in {row['seconds']} s", flush=True)
        return row


def fit_figures(text: str) -> dict:
    """Steps/s from the CLI's progress lines and the validation scores it printed."""
    rates = [float(m) for m in re.findall(r"\(([\d.]+) steps/s\)", text)]
    scores = re.findall(r"validation at step (\d+): score ([\d.]+)", text)
    out: dict = {}
    if rates:
        out["steps_per_s"] = rates[-1]
    if scores:
        out["validations"] = [(int(s), float(v)) for s, v in scores]
    return out


def overrides(args: argparse.Namespace, model: str) -> list[str]:
    """The short-run settings of a fit: ~60 steps, two validations, 16 held-out images."""
    size = 128 if args.smoke else 1024
    train = [{"class_path": "focal_pl.data.SyntheticForgeries",
              "init_args": {"length": 400 if not args.smoke else 40, "size": size, "seed": 1}}]
    common = ["--trainer.max_steps", str(args.steps), "--trainer.val_check_interval", str(args.steps // 2),
              "--trainer.log_every_n_steps", str(max(1, args.steps // 6)), "--data.val_split", "16",
              "--data.train", json.dumps(train), "--data.num_workers", "2" if args.smoke else "8",
              "--trainer.logger.init_args.save_dir", str(args.work / "runs")]
    if args.smoke:
        common += ["--trainer.accelerator", "cpu", "--trainer.precision", "32-true", "--data.image_size", str(size),
                   "--data.batch_size", "2"]
        if model == "vit":
            common += ["--model.init_args.extractor.init_args.size", "tiny",
                       "--model.init_args.extractor.init_args.img_size", str(size),
                       "--model.init_args.clusterer.init_args.min_cluster_size", "0.1"]
        else:
            common += ["--model.init_args.extractor.init_args.variant", "w18_small",
                       "--model.init_args.clusterer.init_args.grid", "16",
                       "--model.init_args.clusterer.init_args.min_cluster_size", "0.1"]
    return common


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the same steps on the CPU with tiny models")
    parser.add_argument("--steps", type=int, default=None, help="training steps of each fit (60; smoke: 4)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all steps (one device call)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these steps")
    parser.add_argument("--work", type=Path, default=Path("/tmp/focal-pl-gpu-check"))
    parser.add_argument("--tag", default="", help="suffix of the results files")
    args = parser.parse_args()
    args.steps = args.steps or (4 if args.smoke else 60)
    shutil.rmtree(args.work, ignore_errors=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    wheels = bring_wheels(env)
    check = Check(args, env, args.work)
    python = [sys.executable]
    focal = [*python, "-m", "focal_pl"]
    check.run("env", [*python, "-c", "import torch, sklearn, lightning, sys; print(sys.version.split()[0], "
                      "torch.__version__, 'cuda', torch.version.cuda, 'sklearn', sklearn.__version__, 'lightning', "
                      "lightning.__version__); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() "
                      "else 'no GPU', torch.cuda.get_device_properties(0).total_memory // 2**20 if "
                      "torch.cuda.is_available() else 0, 'MiB')"], 60,
              lambda text: {"versions": text.strip().splitlines()[:2]})
    for model in ("vit", "hrnet"):
        check.run(f"fit_{model}", [*focal, "fit", "--config", f"{model}.yaml", *overrides(args, model)],
                  300 if not args.smoke else 600, fit_figures)
    runs = sorted((args.work / "runs" / "vit").glob("*/checkpoints/last.ckpt"))
    real = real_data(args.smoke)
    if runs and real is not None:
        casia = json.dumps([{"class_path": "focal_pl.data.sources.CASIA",
                             "init_args": {"root": str(real / "CASIA1_samples"), "include_authentic": True}}])
        folder = json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder",
                              "init_args": {"root": str(real / "CASIA1_samples" / "images")}}])
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
        check.run("gpu_tests", [*python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"], 240,
                  lambda text: {"summary": (re.findall(r"\d+ passed.*|\d+ failed.*", text) or [""])[-1]})
        check.run("clustering", [*python, "benchmarks/clustering_speed.py", "--device", "cuda"], 180)
        check.run("predict", [*python, "benchmarks/predict_speed.py", "--images", "32", "--batches", "1", "8",
                              "--tag", "gpu"], 180)
        check.run("training", [*python, "benchmarks/training_speed.py", "--models", "vit_l", "hrnet_w32",
                               "--attention", "fused", "timm", "--options", "eager", "compile+fused_adam",
                               "--steps", "10", "--warmup", "3", "--tag", "gpu"], 300)
    return write(args, check, wheels)


def write(args: argparse.Namespace, check: Check, wheels: str) -> int:
    """The summary table (device included), and everything in one archive under $OUT."""
    from focal_pl.training.provenance import machine, machine_line

    info = machine()
    stem = "gpu_check" + ("_smoke" if args.smoke else "") + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"machine": info, "wheels": wheels, "rows": check.rows},
                                                     indent=1))
    lines = [f"# GPU check ({stem})", "", machine_line(info), "", f"Wheels: {wheels}.", "",
             "| step | status | seconds | figures |", "|---|---|---|---|"]
    for row in check.rows:
        figures = {k: v for k, v in row.items() if k not in ("step", "status", "seconds", "command", "tail")}
        lines.append(f"| {row['step']} | {row.get('status', '-')} | {row.get('seconds', '-')} | "
                     f"{json.dumps(figures) if figures else ''} |")
    for row in check.rows:
        if row.get("tail"):
            lines += ["", f"{row['step']} ended with:", "```", *row["tail"], "```"]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    out = os.environ.get("OUT")
    if out:
        with tarfile.open(Path(out) / "gpu_check.tar.gz", "w:gz") as archive:
            for path in RESULTS.glob("*"):
                if "gpu" in path.name or path.name.startswith(("training_", "predict_", "clustering_speed")):
                    archive.add(path, arcname=f"results/{path.name}")
            archive.add(check.work / "logs", arcname="logs")
    failed = [r for r in check.rows if str(r.get("status", "")).startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
