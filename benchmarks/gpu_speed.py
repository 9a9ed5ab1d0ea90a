"""Speed on the device: ``focal-pl predict`` end to end and the extractor alone (``predict``), and training
images/s with peak memory per model, attention and option set (``training``); ``--smoke`` runs both on the
CPU with tiny models. The GPU check (``make gpu-check``: .ci/gpu_check.py) runs them on the GPU machine.

    python benchmarks/gpu_speed.py predict|training [--smoke] [--results DIR]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import RESULTS, median_time, parser, show, table, times, write_result

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


def extractor(name: str, size: int, attention: str = "fused") -> object:
    """A SAM ViT (``vit_*``, at ``size`` px, with that attention) or an HRNet (``hrnet_*``), untrained."""
    from focal_pl.extractors import HRNet, SamViT

    return SamViT(VITS[name], img_size=size, attention=attention) if name in VITS else HRNet(HRNETS[name])


def predict_speed(smoke: bool, results: Path = RESULTS) -> None:
    """``focal-pl predict`` end to end on synthetic photos (the ``PredictionWriter``'s seconds, after a warm-up
    run; untrained: speed does not depend on the weights), and the median ms of the extractor alone."""
    import torch

    from focal_pl.cli.lightning import run_lightning
    from focal_pl.data.synthetic_sets import write_set

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

    with tempfile.TemporaryDirectory() as tmp:  # photos with a camera's grain as JPEGs: a real decode cost
        write_set("folder", Path(tmp) / "set", s["images"], size=s["size"])
        folder = Path(tmp) / "set" / "images"
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
        results=results, title=f"focal-pl predict, end to end ({stem})")


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


def training_speed(smoke: bool, results: Path = RESULTS) -> None:
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
    write_result(stem, {"rows": rows}, [*note, *table(header, cells)], results=results,
                 title=f"Training and inference speed ({stem})")


def main() -> None:
    options = parser(__doc__)
    options.add_argument("what", choices=["predict", "training"], help="which benchmark")
    options.add_argument("--smoke", action="store_true", help="on the CPU with tiny models (a test of the script)")
    options.add_argument("--results", type=Path, default=RESULTS, help="where the .json and .md go")
    args = options.parse_args()
    (predict_speed if args.what == "predict" else training_speed)(args.smoke, args.results)


if __name__ == "__main__":
    main()
