"""Prepare what a bare GPU machine lacks for ``make gpu-check``: wheels (Python 3.12, manylinux) of
the packages its image does not hold, at this venv's versions, in ``.whl/``; and a few real forged
and authentic images from ``../shared/data/real`` in ``.gpucheck/real/`` (``../shared`` does not
travel). Both folders are git-ignored; the device tool carries them (``carry: [.whl, .gpucheck]``).

    make gpu-pack            # here, with the registry
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# fit, test and predict need these beyond the GPU image's (measured: ~9 MB for cp312)
MISSING = ("jsonargparse", "docstring_parser", "typeshed_client", "albumentations", "albucore", "pydantic",
           "pydantic_core", "annotated-types", "typing-inspection", "simsimd", "stringzilla", "typing_extensions")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
REAL = {"CASIA1_samples": 12, "CASIA2_samples": 4}  # images of each sample set (and their masks)


def download_wheels(target: Path) -> list[str]:
    """One wheel per missing package, at the version installed here."""
    target.mkdir(exist_ok=True)
    specs = [f"{name}=={metadata.version(name)}" for name in MISSING]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(target), *specs],
                   check=True)
    return specs


def copy_real(shared: Path, target: Path) -> int:
    """The first images (with their masks and, for CASIA v1, as many authentic ones) of each sample set."""
    copied = []
    for name, count in REAL.items():
        source = shared / name
        if not source.is_dir():
            continue
        images = sorted((source / "images").iterdir())[:count]
        stems = {p.stem for p in images}
        masks = [m for m in sorted((source / "masks").iterdir()) if m.stem.removesuffix("_gt") in stems]
        authentic = sorted((source / "authentic").iterdir())[:count] if (source / "authentic").is_dir() else []
        for path in images + masks + authentic:
            out = target / name / path.parent.name / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            copied.append(shutil.copy2(path, out))
    return len(copied)


def main() -> None:
    specs = download_wheels(ROOT / ".whl")
    shared = ROOT.parent / "shared" / "data" / "real"
    real = ROOT / ".gpucheck" / "real"
    shutil.rmtree(real, ignore_errors=True)
    copied = copy_real(shared, real)
    size = sum(p.stat().st_size for p in (ROOT / ".whl").iterdir()) + sum(
        p.stat().st_size for p in real.rglob("*") if p.is_file())
    print(f"wheels: {', '.join(specs)}\nreal images and masks: {copied} files from {shared}\n"
          f"carry [.whl, .gpucheck]: {size / 2**20:.1f} MiB (the device tool takes 64 MiB)")


if __name__ == "__main__":
    main()
