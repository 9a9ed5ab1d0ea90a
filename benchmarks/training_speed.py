"""Training images/s and inference ms per image of the paper's extractors with the SCL loss, the
baseline for the GPU work (issue 6): timm models, bf16 autocast, Adam, 1024 x 1024 input. A
micro-benchmark of one step (forward, loss, backward, Adam on a fixed batch); ``make gpu-check`` runs
it, and ``focal-pl fit`` there measures the whole loop.

    python benchmarks/training_speed.py                       # on the GPU: ViT-L, ViT-B, HRNet-W32
    python benchmarks/training_speed.py --models vit_l --options eager compile channels_last compile+fused_adam
    python benchmarks/training_speed.py --device cpu --size 128 --models vit_tiny --steps 3 --tag cpu_smoke

Each row is one (model, attention, options) setting: steps after warm-up, images/s, peak GPU memory,
and the feature time of one image in eval mode. ``--attention`` picks the SAM ViTs' attention
(``fused``: relative positions folded into one maskless SDPA call; ``timm``: timm's own path);
``--options`` lists option sets (``eager`` or ``+``-joined ``channels_last``, ``compile``,
``fused_adam``), one row each. Writes benchmarks/results/training_speed[_<tag>].json and the table
(.md) with the machine (GPU name included).
"""

from __future__ import annotations

import argparse
import json

import torch

from focal_pl.extractors import HRNet, SamViT
from focal_pl.losses import SoftContrastiveLoss

from common import median_time, table, times, write_result

VITS = {"vit_l": "large", "vit_b": "base", "vit_tiny": "tiny"}
HRNETS = {"hrnet_w32": "w32", "hrnet_w18_small": "w18_small"}
MODELS = sorted(VITS) + sorted(HRNETS)
OPTIONS = ("channels_last", "compile", "fused_adam")


def option_sets(specs: list[str] | None) -> list[frozenset[str]]:
    """The option sets of ``--options``, one row each."""
    sets = []
    for spec in specs or ["eager"]:
        names = set() if spec == "eager" else set(spec.split("+"))
        if names - set(OPTIONS):
            raise SystemExit(f"unknown option {sorted(names - set(OPTIONS))} in {spec!r}: use eager or +-joined "
                             f"{OPTIONS}")
        sets.append(frozenset(names))
    return list(dict.fromkeys(sets))


def measure(name: str, attention: str | None, options: frozenset[str], args: argparse.Namespace) -> dict:
    """``--steps`` training steps (forward and loss under autocast, backward, Adam) after ``--warmup``
    ones on random images with a forged rectangle each (speed does not depend on the content), then
    the median time of one image in eval mode."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    memory_format = torch.channels_last if "channels_last" in options else torch.contiguous_format
    model = (SamViT(VITS[name], img_size=args.size, attention=attention or "fused") if name in VITS
             else HRNet(HRNETS[name])).to(device).to(memory_format=memory_format)
    loss_fn, forward = SoftContrastiveLoss(), torch.compile(model) if "compile" in options else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True if "fused_adam" in options else None)
    size = args.size
    images = torch.rand(args.batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    masks = torch.zeros(args.batch, 1, size, size, device=device)
    masks[:, :, size // 4: size // 2, size // 3: 2 * size // 3] = 1
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")  # noqa: E731

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
    train_seconds = sum(times(step, args.steps, warmup=args.warmup, sync=sync))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    model.eval()
    with torch.inference_mode():
        infer_s = median_time(infer, args.steps, warmup=args.warmup, sync=sync)
    return {
        "model": name, "attention": attention, "size": args.size, "batch": args.batch, "precision": args.precision,
        **{option: option in options for option in OPTIONS},
        "steps": args.steps, "train_img_per_s": args.batch * args.steps / train_seconds,
        "peak_gib": peak, "infer_ms": 1000 * infer_s, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_l", "vit_b", "hrnet_w32"], choices=MODELS)
    parser.add_argument("--attention", nargs="+", default=["fused"], choices=["fused", "timm"],
                        help="SAM ViT attention, one row each (ignored by the HRNets)")
    parser.add_argument("--options", nargs="+", default=None,
                        help=f"option sets, one row each: eager or +-joined {', '.join(OPTIONS)}")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", choices=["bf16", "32"], default="bf16")
    parser.add_argument("--tag", default="", help="suffix of the results files")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        for attention in args.attention if name in VITS else [None]:
            for options in option_sets(args.options):
                rows.append(measure(name, attention, options, args))
                print(json.dumps(rows[-1]), flush=True)
                if args.device == "cuda":
                    torch.cuda.empty_cache()
    stem = "training_speed" + (f"_{args.tag}" if args.tag else "")
    header = ["model", "attention", "size", "batch", "precision", "options", "train img/s", "peak GiB",
              "infer ms / image", "params M"]
    cells = ([r["model"], r["attention"] or "-", r["size"], r["batch"], r["precision"],
              ", ".join(k for k in OPTIONS if r[k]) or "eager", f"{r['train_img_per_s']:.2f}",
              "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}", f"{r['infer_ms']:.1f}", f"{r['params_m']:.1f}"]
             for r in rows)
    note = [] if args.device == "cuda" else ["CPU run: a smoke test of the benchmark, not a GPU figure.", ""]
    write_result(stem, {"rows": rows}, [*note, *table(header, cells)], title=f"Training and inference speed ({stem})")


if __name__ == "__main__":
    main()
