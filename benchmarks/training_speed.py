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
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from focal_pl.extractors import HRNet, SamViT
from focal_pl.losses import SoftContrastiveLoss
from focal_pl.training.provenance import machine, machine_line

RESULTS = Path(__file__).parent / "results"
VITS = {"vit_l": "large", "vit_b": "base", "vit_tiny": "tiny"}
HRNETS = {"hrnet_w32": "w32", "hrnet_w18_small": "w18_small"}
MODELS = sorted(VITS) + sorted(HRNETS)
OPTIONS = ("channels_last", "compile", "fused_adam")


def build(name: str, size: int, attention: str | None) -> torch.nn.Module:
    if name in VITS:
        return SamViT(VITS[name], img_size=size, attention=attention or "fused")
    return HRNet(HRNETS[name])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and a forged rectangle per image (speed does not depend on the content)."""
    images = torch.rand(n, 3, size, size, device=device)
    masks = torch.zeros(n, 1, size, size, device=device)
    masks[:, :, size // 4: size // 2, size // 3: 2 * size // 3] = 1
    return images, masks


def option_sets(args: argparse.Namespace) -> list[frozenset[str]]:
    """The option sets of ``--options``, one row each."""
    sets = []
    for spec in args.options or ["eager"]:
        names = set() if spec == "eager" else set(spec.split("+"))
        unknown = names - set(OPTIONS)
        if unknown:
            raise SystemExit(f"unknown option {sorted(unknown)} in {spec!r}: use eager or +-joined {OPTIONS}")
        sets.append(frozenset(names))
    return list(dict.fromkeys(sets))


def settings(args: argparse.Namespace) -> list[tuple[str, str | None, frozenset[str]]]:
    return [
        (name, attention, options)
        for name in args.models
        for attention in (args.attention if name in VITS else [None])
        for options in option_sets(args)
    ]


class Setting:
    """One model with its loss, optimizer and batch; ``step()`` is one training step."""

    def __init__(self, name: str, attention: str | None, options: frozenset[str], args: argparse.Namespace,
                 device: torch.device) -> None:
        torch.manual_seed(0)
        self.device = device
        self.dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        self.autocast = args.precision == "bf16"
        memory_format = torch.channels_last if "channels_last" in options else torch.contiguous_format
        self.model = build(name, args.size, attention).to(device).to(memory_format=memory_format)
        self.loss_fn = SoftContrastiveLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4,
                                          fused=True if "fused_adam" in options else None)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.model) if "compile" in options else self.model)
        images, self.masks = batch(args.batch, args.size, device)
        self.images = images.contiguous(memory_format=memory_format)

    def step(self) -> float:
        """One training step: forward and loss under autocast, backward, Adam."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast):
            loss = self.loss_fn(self.forward(self.images), self.masks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast):
            return self.forward(images)


def measure(setting: Setting, name: str, attention: str | None, options: frozenset[str],
            args: argparse.Namespace) -> dict:
    device = setting.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    setting.model.train()
    for _ in range(args.warmup):
        setting.step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        setting.step()
    synchronize(device)
    train_seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    setting.model.eval()
    one = setting.images[:1]
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.steps):
            synchronize(device)
            start = time.perf_counter()
            setting.infer(one)
            synchronize(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    setting.model.train()
    return {
        "model": name, "attention": attention, "size": args.size, "batch": args.batch, "precision": args.precision,
        **{option: option in options for option in OPTIONS},
        "steps": args.steps, "train_img_per_s": args.batch * args.steps / train_seconds,
        "peak_gib": peak, "infer_ms": 1000 * statistics.median(times),
        "params_m": sum(p.numel() for p in setting.model.parameters()) / 1e6,
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
    device = torch.device(args.device)
    rows = []
    for name, attention, options in settings(args):
        setting = Setting(name, attention, options, args, device)
        row = measure(setting, name, attention, options, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
        del setting
        if device.type == "cuda":
            torch.cuda.empty_cache()
    info = machine()
    suffix = f"_{args.tag}" if args.tag else ""
    stem = "training_speed" + suffix
    caveat = ([f"CPU run ({args.device}, load average {os.getloadavg()[0]:.1f} at the end): a smoke test of "
               "the benchmark, not a GPU figure.", ""] if device.type != "cuda" else [])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    lines = [f"# Training and inference speed ({stem})", "", machine_line(info), "", *caveat,
             "| model | attention | size | batch | precision | options | train img/s | peak GiB | "
             "infer ms / image | params M |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        options = ", ".join(k for k in OPTIONS if r[k]) or "eager"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        lines.append(f"| {r['model']} | {r['attention'] or '-'} | {r['size']} | {r['batch']} | {r['precision']} | "
                     f"{options} | {r['train_img_per_s']:.2f} | {peak} | {r['infer_ms']:.1f} | {r['params_m']:.1f} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
