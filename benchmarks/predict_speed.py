"""Images/s and ms per image of ``focal-pl predict`` on a folder, end to end (decode, resize,
features, clustering on the model's device, masks and overlays written), against the feature
time alone; the figures the GPU issue asks for (target on an H100: <= 60 ms per 1024 px image).

    python benchmarks/predict_speed.py                                   # GPU: SAM ViT-L, 1024 px
    python benchmarks/predict_speed.py --device cpu --model tiny --size 256 --images 8 --tag cpu_smoke

The model is untrained (speed does not depend on the weights): ``--run.allow_untrained true``.
Writes benchmarks/results/predict_speed[_<tag>].json / .md with the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import median_time, table, write_result

MODELS = {  # extractor overrides of vit.yaml
    "vit_l": [],
    "vit_b": ["--model.init_args.extractor.init_args.size", "base"],
    "tiny": ["--model.init_args.extractor.init_args.size", "tiny"],
}


def make_folder(root: Path, count: int, size: int) -> None:
    """``count`` random-texture JPEGs of ``size`` px (decode cost like real photos of that size)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(base).resize((size, size), Image.BILINEAR).save(root / f"img{i:04d}.jpg", quality=90)


def predict_seconds(folder: Path, out: Path, args: argparse.Namespace, batch: int) -> float:
    """Seconds of one ``focal-pl predict`` over the folder, from its first batch to its last file
    written (the model is built and on its device before: start-up is not per image)."""
    from focal_pl.cli.lightning import run_lightning

    gpu = args.device == "cuda"
    argv = ["predict", "--config", "vit.yaml", *MODELS[args.model], "--run.allow_untrained", "true",
            "--model.init_args.extractor.init_args.img_size", str(args.size), "--data.image_size", str(args.size),
            "--trainer.accelerator", "gpu" if gpu else "cpu", "--trainer.precision", "bf16-mixed" if gpu else "32-true",
            "--trainer.enable_progress_bar", "false",
            "--data.eval_batch_size", str(batch), "--data.num_workers", str(args.workers),
            "--data.predict", json.dumps([{"class_path": "focal_pl.data.sources.ImageFolder",
                                           "init_args": {"root": str(folder)}}]),
            "--prediction.output_dir", str(out), "--trainer.logger.init_args.save_dir", str(out)]
    cli = run_lightning(argv)
    return next(c for c in cli.trainer.callbacks if type(c).__name__ == "PredictionWriter").seconds


def feature_ms(args: argparse.Namespace) -> float:
    """Median ms of the extractor alone on one image (eval, bf16 on the GPU; 3 warm-up calls, 5 timed)."""
    from focal_pl.extractors import SamViT

    size = {"vit_l": "large", "vit_b": "base", "tiny": "tiny"}[args.model]
    model = SamViT(size, img_size=args.size).to(args.device).eval()
    image = torch.rand(1, 3, args.size, args.size, device=args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    with torch.inference_mode(), torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda"):
        return 1000 * median_time(lambda: model(image), 5, warmup=3, sync=sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="vit_l", choices=sorted(MODELS))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        make_folder(folder, args.images, args.size)
        predict_seconds(folder, Path(tmp) / "warmup", args, args.batches[0])  # compile caches, cudnn autotune
        for batch in args.batches:
            seconds = predict_seconds(folder, Path(tmp) / f"b{batch}", args, batch)
            rows.append({"batch": batch, "images": args.images, "seconds": seconds,
                         "images_per_s": args.images / seconds, "ms_per_image": 1000 * seconds / args.images})
            print(json.dumps(rows[-1]), flush=True)
    features = feature_ms(args)
    stem = "predict_speed" + (f"_{args.tag}" if args.tag else "")
    write_result(stem, {"args": vars(args), "rows": rows, "feature_ms": features}, [
        f"{args.images} JPEGs of {args.size} px, model {args.model} (untrained), device {args.device}, {args.workers} "
        f"loader workers; the extractor alone: {features:.1f} ms per image.", "",
        *table(["batch", "images/s", "ms per image"],
               ((r["batch"], f"{r['images_per_s']:.2f}", f"{r['ms_per_image']:.1f}") for r in rows))],
        title=f"focal-pl predict, end to end ({stem})")


if __name__ == "__main__":
    main()
