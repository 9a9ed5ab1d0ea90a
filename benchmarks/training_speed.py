"""Training images/s and inference ms per image of the paper's extractors with the SCL loss, the
baseline for issue 6's GPU work: eager timm models, bf16 autocast, Adam, 1024 x 1024 input.

    python benchmarks/training_speed.py                       # on the GPU: ViT-L, ViT-B, HRNet-W32
    python benchmarks/training_speed.py --models vit_b --channels-last --fused-adam --compile
    python benchmarks/training_speed.py --device cpu --size 128 --models vit_tiny hrnet_w18_small --steps 3

Each row is one (model, options) setting: steps after warm-up, images/s, peak GPU memory, and the
feature time of one image in eval mode. Writes benchmarks/results/training_speed[_<tag>].json / .md
with the machine (GPU name included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from focal_pl.extractors import HRNet, SamViT
from focal_pl.losses import SoftContrastiveLoss
from focal_pl.runs import machine, machine_line

RESULTS = Path(__file__).parent / "results"
MODELS = {
    "vit_l": lambda size: SamViT("large", img_size=size),
    "vit_b": lambda size: SamViT("base", img_size=size),
    "vit_tiny": lambda size: SamViT("tiny", img_size=size),
    "hrnet_w32": lambda size: HRNet("w32"),
    "hrnet_w18_small": lambda size: HRNet("w18_small"),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and a forged rectangle per image (speed does not depend on the content)."""
    images = torch.rand(n, 3, size, size, device=device)
    masks = torch.zeros(n, 1, size, size, device=device)
    masks[:, :, size // 4: size // 2, size // 3: 2 * size // 3] = 1
    return images, masks


def measure(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = MODELS[name](args.size).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    loss_fn = SoftContrastiveLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=args.fused_adam or None)
    forward = torch.compile(model) if args.compile else model
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    images, masks = batch(args.batch, args.size, device)
    images = images.contiguous(memory_format=memory_format)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        with torch.autocast(device.type, dtype=dtype, enabled=args.precision == "bf16"):
            loss = loss_fn(forward(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    model.train()
    for _ in range(args.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    train_seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    model.eval()
    one = images[:1]
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=args.precision == "bf16"):
        for i in range(args.warmup + args.steps):
            synchronize(device)
            start = time.perf_counter()
            forward(one)
            synchronize(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    return {
        "model": name, "size": args.size, "batch": args.batch, "precision": args.precision,
        "channels_last": args.channels_last, "compile": args.compile, "fused_adam": args.fused_adam,
        "steps": args.steps, "train_img_per_s": args.batch * args.steps / train_seconds,
        "peak_gib": peak, "infer_ms": 1000 * statistics.median(times),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_l", "vit_b", "hrnet_w32"], choices=sorted(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", choices=["bf16", "32"], default="bf16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--fused-adam", action="store_true")
    parser.add_argument("--tag", default="", help="suffix of the results files")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for name in args.models:
        row = measure(name, args, device)
        print(json.dumps(row), flush=True)
        rows.append(row)
    info = machine()
    stem = "training_speed" + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    lines = [f"# Training and inference speed ({stem})", "", machine_line(info), "",
             "| model | size | batch | precision | options | train img/s | peak GiB | infer ms / image | params M |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        options = ", ".join(k for k in ("channels_last", "compile", "fused_adam") if r[k]) or "eager"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        lines.append(f"| {r['model']} | {r['size']} | {r['batch']} | {r['precision']} | {options} | "
                     f"{r['train_img_per_s']:.2f} | {peak} | {r['infer_ms']:.1f} | {r['params_m']:.1f} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
