"""Handing a model on: a release file anyone can load safely, with a model card, and a model that
localizes forgeries in one call.

``focal-pl export RUN_OR_CKPT --out NAME.pt`` writes NAME.pt, which ``torch.load(path,
weights_only=True)`` reads (tensors and plain data only, no pickled classes): the weights, the
resolved model config, the training input size, the validation and test figures, and the
provenance (``run.json``); and NAME.md beside it, the model card. ``focal_pl.load("NAME.pt")`` gives a
``ReleasedModel``; ``model.localize(image)`` gives a ``Localization`` (``.mask``, ``.score_map``,
``.image_score``, NumPy at the image's own size). The official FOCAL
release files (ViT and HRNet state dicts, ``module.net.`` prefixes) convert into the same format
(``focal-pl export --official FILE``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from focal_pl.files.atomic import remove_stale_temporaries, write_atomic
from focal_pl.files.checkpoint import atomic_save, read_checkpoint, weights_digest

log = logging.getLogger(__name__)

FORMAT = "focal-pl-release/1"
TRAINING_ONLY = ("optimizer", "scheduler", "scheduler_interval", "monitor", "compile", "_instantiator")


class ReleaseError(ValueError):
    """A release file that cannot be used; the message names it and says why."""


# ---------------------------------------------------------------- writing


def checkpoint_of(source: str | Path) -> Path:
    """The checkpoint a release is made from: a .ckpt as given, or what a run folder means to an
    evaluation (``run_checkpoint``: its best checkpoint, the model its validation selected, else its
    last.ckpt)."""
    from focal_pl.training.checkpoints import run_checkpoint

    path = Path(source).expanduser()
    if path.is_dir():
        found = run_checkpoint(path)
        if found is None:
            raise ReleaseError(f"{path}: no best-*.ckpt or last.ckpt to export")
        return found
    if not path.is_file():
        raise ReleaseError(f"{path} does not exist")
    return path


def model_config(hparams: dict[str, Any]) -> dict[str, Any]:
    """The module's class path and the arguments that build it (not the ones that train it)."""
    if "_class_path" not in hparams:
        raise ReleaseError("the checkpoint keeps no model config (a module built in Python without the CLI?)")
    return {"class_path": hparams["_class_path"],
            "init_args": {k: v for k, v in hparams.items() if not k.startswith("_") and k not in TRAINING_ONLY}}


def _run_files(checkpoint_path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The run's saved config and its test reports (newest last), when the checkpoint is in a run folder."""
    run = checkpoint_path.resolve().parent.parent
    config = None
    if checkpoint_path.parent.name == "checkpoints" and (run / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run / "config.yaml").read_text())
    tests = []
    for folder in sorted(run.glob("test_*"), key=lambda p: int(p.name.split("_")[-1]) if p.name.split("_")[-1].isdigit()
                         else -1):
        if (folder / "results.json").is_file():
            tests.append({"folder": folder.name, **json.loads((folder / "results.json").read_text())})
    return config, tests


def described(tests: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The test report a model card shows: the newest that scored images with a ground truth (a test
    on a folder of photos without masks scores none and describes nothing)."""
    scored = [t for t in tests if any(e.get("forged_images") or e.get("authentic_images")
                                      for e in t.get("results") or [])]
    return scored[-1] if scored else None


def build_release(checkpoint_path: Path) -> dict[str, Any]:
    """The release dict of a focal-pl checkpoint (weights, model config, input size, figures, provenance)."""
    checkpoint = read_checkpoint(checkpoint_path)
    config, tests = _run_files(checkpoint_path)
    meta = checkpoint.get("focal_pl") or {}
    provenance = meta.get("provenance") or {}
    image_size = provenance.get("image_size") or ((config or {}).get("data") or {}).get("image_size")
    states = checkpoint.get("callbacks") or {}
    record = (states.get("ValidationRecord") or states.get("ClusterEvaluator") or {}).get("record") or {}
    return {
        "format": FORMAT,
        "model": model_config(checkpoint.get("hyper_parameters") or {}),
        "weights": checkpoint["state_dict"],
        "image_size": image_size,
        "extractor": record.get("extractor"),
        "figures": {"validation": {k: record.get(k) for k in ("untrained", "best", "final")},
                    "test": described(tests)},
        "provenance": provenance,
        "source": {"checkpoint": str(checkpoint_path.resolve()), "step": checkpoint.get("global_step"),
                   "weights_sha256": meta.get("weights_sha256")},
    }


def official_release(state_path: str | Path, image_size: int = 1024) -> dict[str, Any]:
    """A release from an official FOCAL state dict (``FOCAL_ViT_weights.pth``, ``FOCAL_HRNet_weights.pth``:
    ``module.net.`` + SAM's image encoder or the pose HRNet); the extractor's size is read from the
    tensors' shapes."""
    from focal_pl.evaluation import paper
    from focal_pl.extractors.weights import read_state_dict

    path = Path(state_path).expanduser()
    state = read_state_dict(path)
    if any("image_encoder.patch_embed" in k for k in state):
        embed = next(v for k, v in state.items() if k.endswith("image_encoder.patch_embed.proj.weight"))
        size = {1280: "huge", 1024: "large", 768: "base", 64: "tiny"}.get(int(embed.shape[0]))
        if size is None:
            raise ReleaseError(f"{path}: a SAM encoder {embed.shape[0]} wide is none of tiny/base/large/huge")
        extractor = {"class_path": "focal_pl.extractors.SamViT", "init_args": {"size": size, "img_size": image_size}}
        clusterer: dict[str, Any] = {"class_path": "focal_pl.clustering.Clusterer", "init_args": {}}
        row = "FOCAL (ViT)"
    elif any(k.endswith("stage4.0.branches.0.0.conv1.weight") or "transition3" in k for k in state):
        width = next(v for k, v in state.items() if k.endswith("transition1.0.0.weight")).shape[0]
        variant = {16: "w18_small", 18: "w18", 30: "w30", 32: "w32", 40: "w40", 44: "w44", 48: "w48",
                   64: "w64"}.get(int(width))
        if variant is None:
            raise ReleaseError(f"{path}: an HRNet {width} wide is not a known variant")
        extractor = {"class_path": "focal_pl.extractors.HRNet", "init_args": {"variant": variant, "out_dim": None}}
        # as hrnet.yaml: the 256 x 256 map pooled to 128 x 128, the paper's 200 of 65536 points as the share
        clusterer = {"class_path": "focal_pl.clustering.Clusterer",
                     "init_args": {"grid": 128, "min_cluster_size": 200 / 65536}}
        row = "FOCAL (HRNet)"
    else:
        raise ReleaseError(f"{path}: neither the official ViT (image_encoder.*) nor HRNet (stage4.*) layout")
    spec = {"class_path": "focal_pl.module.FocalModule", "init_args": {"extractor": extractor, "clusterer": clusterer}}
    # the extractors read the official layouts themselves (prefixes, SAM's names); the release keeps no path
    loading = {**spec, "init_args": {**spec["init_args"], "extractor": {
        **extractor, "init_args": {**extractor["init_args"], "weights": str(path)}}}}
    module = instantiate(loading)
    report = getattr(module.extractor, "load_report", None)
    if report is not None and (report.missing or report.mismatched):
        raise ReleaseError(f"{path}: {len(report.missing) + len(report.mismatched)} weights of the extractor are "
                           f"missing or of another shape ({', '.join((report.missing + report.mismatched)[:3])} ...)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    published = {s: paper.figure(paper.MAIN_TABLE, row, s, "f1") for s in paper.figures()["table_2_pixel"]["sets"]}
    return {
        "format": FORMAT, "model": spec, "weights": module.state_dict(), "image_size": image_size,
        "extractor": {"class": type(module.extractor).__name__, "parameters": module.extractor.parameter_count()},
        "figures": {"validation": None, "test": None,
                    "published": {"table": paper.MAIN_TABLE, "row": row, "f1": published}},
        "provenance": {"source": "the official FOCAL release (HighwayWu/FOCAL)", "file": str(path.resolve()),
                       "file_sha256": digest},
        "source": {"official": str(path.resolve()), "file_sha256": digest},
    }


def tensor_digests(weights: dict[str, Tensor]) -> dict[str, str]:
    """The sha256 of each weight tensor (name, dtype, shape and bytes), so that damage is named."""
    return {name: weights_digest({"state_dict": {name: tensor}}) for name, tensor in weights.items()}


def export(source: str | Path | None, out: str | Path, official: str | Path | None = None,
           image_size: int | None = None) -> tuple[Path, Path]:
    """Write ``out`` (the release, with the sha256 of each weight tensor) and the model card beside
    it; returns both paths. Both are written atomically: a kill leaves the previous files or none."""
    release = official_release(official, image_size or 1024) if official else build_release(checkpoint_of(source))
    if image_size:
        release["image_size"] = image_size
    release["weights_sha256"] = tensor_digests(release["weights"])
    target = Path(out).expanduser()
    if target.suffix != ".pt":
        target = target.with_suffix(".pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    for name in (target.name, target.with_suffix(".md").name):  # what an export killed earlier left
        remove_stale_temporaries(target.parent, name)
    atomic_save(release, target)
    card = target.with_suffix(".md")
    write_atomic(card, model_card(release, target.name))
    return target, card


def model_card(release: dict[str, Any], filename: str) -> str:
    """The Markdown model card: what the model is, what it was trained on and for how long, its
    figures, and how to use it."""
    model = release["model"]["init_args"]
    extractor = model.get("extractor") or {}
    provenance = release.get("provenance") or {}
    count = (release.get("extractor") or {}).get("parameters")
    count = f"{count:,} parameters" if count else "parameters not recorded"
    name = Path(filename).stem
    lines = [f"# {name}", "", "A FOCAL forgery localizer released with focal-pl: it extracts features of an image, "
             "clusters them per image (HDBSCAN by default: the largest cluster is pristine, the rest forged) and "
             "returns a mask, a score map and an image-level score.", "", "## Model", "",
             f"- extractor: `{extractor.get('class_path')}` {json.dumps(extractor.get('init_args') or {})}, {count}",
             f"- clustering: `{(model.get('clusterer') or {}).get('class_path', 'focal_pl.clustering.Clusterer')}` "
             f"{json.dumps((model.get('clusterer') or {}).get('init_args') or {})}"
             + ("" if ((model.get("clusterer") or {}).get("init_args") or {}).get("algorithm")
                else " (HDBSCAN, min cluster 200 unless set: the paper's)"),
             ("- trained with: the authors' own training (the paper says SCL; the official code trains InfoNCE "
              "only, its issue #22)" if provenance.get("source") else
              f"- trained with: `{(model.get('loss') or {}).get('class_path', 'focal_pl.losses.SoftContrastiveLoss')}` "
              f"{json.dumps((model.get('loss') or {}).get('init_args') or {})}"),
             f"- input: images resized to {release.get('image_size')} x {release.get('image_size')} (RGB in [0, 1]); "
             "or native resolution by tiles (`native=True`)", ""]
    lines += ["## Training", ""]
    if provenance.get("source"):
        lines += [f"Converted from {provenance['source']}: `{provenance.get('file')}` (sha256 "
                  f"{provenance.get('file_sha256', '')[:16]}...). Trained by its authors; see the paper.", ""]
    else:
        data = provenance.get("data") or {}
        for split in ("train", "val"):
            for source in data.get(split, []):
                where = f" at {source['root']}" if source.get("root") else ""
                lines.append(f"- {split}: {source.get('reader')} {source.get('name') or ''} "
                             f"({source.get('items')} items){where}")
        source = release.get("source") or {}
        hardware = provenance.get("hardware") or {}
        code = provenance.get("code") or {}
        git = code.get("git") or {}
        commit = f", git {git.get('commit', '')[:10]}" + (" (uncommitted changes)" if git.get("dirty") else "") \
            if git else ""
        lines += ["", f"- {source.get('step')} optimizer steps; the run's wall time when the checkpoint was written: "
                  f"{provenance.get('wall_seconds')} s; world size {hardware.get('world_size')}, "
                  f"precision {hardware.get('precision')}",
                  f"- code: focal-pl {code.get('package')}{commit}; "
                  f"torch {(provenance.get('versions') or {}).get('torch')}",
                  f"- from checkpoint `{source.get('checkpoint')}`", ""]
    figures = release.get("figures") or {}
    lines += ["## Figures", ""]
    validation = figures.get("validation") or {}
    for label in ("untrained", "best", "final"):
        entry = validation.get(label) if validation else None
        if entry:
            lines.append(f"- validation, {label} (step {entry.get('step')}): macro F1 {entry['f1']:.4f}, forged F1 "
                         f"{entry['f1_forged']:.4f}, IoU {entry['iou']:.4f} over {int(entry['images'])} images")
    test = figures.get("test")
    if test:
        lines += ([""] if lines[-1] else []) + [
            f"Test ({test.get('folder')}): macro F1 (the FOCAL paper's F1) and IoU of the forged class, "
            "means over each set's forged images:", "",
            "| set | forged images | authentic images | resolution | macro F1 | IoU |", "|---|---|---|---|---|---|"]
        for entry in test.get("results", []):
            if entry.get("degradation") == "none" and entry.get("forged_images"):
                lines.append(f"| {entry['set']} | {entry['forged_images']} | {entry['authentic_images']} | "
                             f"{entry['resolution']} | {entry['f1']:.3f} | {entry['iou']:.3f} |")
    if figures.get("published"):
        published = figures["published"]
        lines += ([""] if lines[-1] else []) + [
            f"Published ({published['row']}, the paper's {published['table']}, macro F1): "
            + ", ".join(f"{k} {v:.3f}" for k, v in published["f1"].items() if v is not None)]
    if not (validation or test or figures.get("published")):
        lines.append("No figures were recorded with this model.")
    lines += ["", "## Use", "", "```bash",
              f"focal-pl predict --weights {filename} --data.predict ImageFolder --data.predict.root my_photos/",
              f"focal-pl predict --weights {filename} --config official.yaml --data.predict ImageFolder "
              "--data.predict.root my_photos/   # clustered as the official code does (cosine k-means)",
              f"focal-pl test --weights {filename} --config data/test_sets.yaml", "```", "", "```python",
              "import focal_pl", "", f'model = focal_pl.load("{filename}")',
              'found = model.localize("photo.jpg")   # a path, a PIL image or an array',
              "found.mask, found.score_map, found.image_score   # NumPy arrays at the photo's own size, a float",
              "```", "", "The file holds tensors and plain data only: `torch.load(path, weights_only=True)` reads it."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading


def read_release(path: str | Path) -> dict[str, Any]:
    """A release file, loaded with ``weights_only=True`` and checked; ``ReleaseError`` names what is wrong."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ReleaseError(f"{file} does not exist")
    try:
        release = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - said in one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ReleaseError(f"{file}: not a readable release file ({first})") from error
    if not isinstance(release, dict) or release.get("format") != FORMAT:
        found = release.get("format") if isinstance(release, dict) else type(release).__name__
        raise ReleaseError(f"{file}: not a focal-pl release ({FORMAT}; found {found!r}); a checkpoint goes to "
                           "--ckpt_path, a plain weights file to the extractor's `weights`")
    verify_weights(release, file)
    return release


def verify_weights(release: dict[str, Any], file: Path) -> None:
    """Raise ``ReleaseError`` naming the damaged tensors when the weights differ from the sha256
    stored at export (a release without digests was exported before they existed: not checked)."""
    stored = release.get("weights_sha256")
    if not isinstance(stored, dict):
        return
    weights = release.get("weights") or {}
    found = tensor_digests(weights)
    damaged = [name for name, digest in stored.items() if found.get(name) != digest]
    damaged += [name for name in found if name not in stored]
    if damaged:
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        raise ReleaseError(f"{file}: its weights do not match the sha256 stored at export: {damaged[0]}{more} "
                           "damaged (the file is damaged); export it again from its checkpoint")


def instantiate(spec: dict[str, Any]) -> Any:
    """The module a release's model config describes, built with the CLI's own instantiation."""
    from lightning.pytorch.cli import instantiate_module

    from focal_pl.module import FocalModule

    return instantiate_module(FocalModule, {"_class_path": spec["class_path"], **(spec.get("init_args") or {})})


class ReleasedModel:
    """A released FOCAL model, ready to localize: ``mask, score_map, image_score = localize(image)``.

    Attributes: ``module`` (the ``FocalModule``, in eval mode), ``image_size``, ``figures``,
    ``provenance``, ``config`` (the model config), ``path``.
    """

    def __init__(self, release: dict[str, Any], path: str = "", device: str | torch.device = "cpu",
                 clusterer: Any = None, mask_resize: str | None = None) -> None:
        self.path = path
        self.config = release["model"]
        self.image_size = int(release.get("image_size") or 1024)
        self.figures = release.get("figures") or {}
        self.provenance = release.get("provenance") or {}
        self.module = instantiate(self.config)
        missing, unexpected = self.module.load_state_dict(release["weights"], strict=False)
        if missing or unexpected:
            raise ReleaseError(f"{path}: its weights do not fit its model ({len(missing)} missing, "
                               f"{len(unexpected)} unexpected: {', '.join((missing + unexpected)[:3])})")
        if clusterer is not None:
            self.module.clusterer = clusterer
        if mask_resize is not None:
            if mask_resize not in ("nearest", "bilinear"):
                raise ValueError(f"mask_resize must be 'nearest' or 'bilinear', got {mask_resize!r}")
            self.module.mask_resize = mask_resize
        self.module.eval().to(device)

    def __repr__(self) -> str:
        return f"ReleasedModel({self.path!r}, {type(self.module.extractor).__name__}, image_size={self.image_size})"

    @torch.no_grad()
    def localize(self, image: str | Path | Any, native: bool = False) -> Localization:
        """One image (a path, a PIL image, or an H x W (x 3 or 4) array: uint8, uint16, or float in
        [0, 1]) -> its ``Localization`` at the image's own size (as it is shown: a photo's EXIF
        orientation applied), by the same scoring path as ``focal-pl predict``. ``native``: take the
        features on tiles of the training size over the full-resolution image."""
        from focal_pl.data.batch import collate
        from focal_pl.data.items import prepare_item

        array = as_rgb_array(image)
        name = str(image) if isinstance(image, (str, Path)) else "image"
        warn_if_small(name, array.shape[:2], self.image_size)
        item = prepare_item(array, np.zeros(array.shape[:2], np.uint8), name, None if native else self.image_size,
                            truth=False)
        module = self.module
        batch = collate([item], tile=self.image_size if native else None).to_device(module.device)
        scorer = module.scorer
        scored = scorer.score(batch, scorer.cluster(module.features(batch)))[0]
        return Localization(scored.image_mask.numpy(), scored.image_score_map.numpy(),
                            float(scored.result.forged_share))


@dataclass
class Localization:
    """What ``ReleasedModel.localize`` finds in one image, at the image's own size (NumPy arrays).

    Attributes:
        mask: bool H x W, True where the image is predicted forged (``mask.mean()``: the forged share).
        score_map: uint8 H x W, how forged each pixel looks (0-255: the cosine distance of its feature
            to the pristine cluster's center, scaled per image).
        image_score: the image-level score: the predicted forged share, in [0, 1].

    It unpacks as a tuple too: ``mask, score_map, image_score = model.localize(path)``.
    """

    mask: np.ndarray
    score_map: np.ndarray
    image_score: float

    def __iter__(self):
        return iter((self.mask, self.score_map, self.image_score))


def warn_if_small(name: str, size: tuple[int, int], image_size: int) -> bool:
    """One warning line for an image whose short side is below ``MIN_SIDE`` (the model sees it
    upscaled many times and its mask means little); True when it warned."""
    from focal_pl.data.decode import small_image

    said = small_image(name, size, image_size)
    if said:
        log.warning(said)
    return bool(said)


def as_rgb_array(image: Any) -> np.ndarray:
    """A path, a PIL image or an array as a uint8 H x W x 3 RGB array, as the image is shown: a
    file's or a PIL image's EXIF orientation applied; 16-bit data scaled to 8 bits; alpha dropped."""
    from focal_pl.data.decode import read_image, to_rgb

    if isinstance(image, (str, Path)):
        return read_image(Path(image), upright=True)
    if hasattr(image, "convert"):  # PIL
        from PIL import ImageOps

        return to_rgb(ImageOps.exif_transpose(image))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"an image must be H x W x 3 (RGB), got an array of shape {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint16:
        array = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def load(path: str | Path, device: str | torch.device = "cpu", clusterer: Any = None,
         mask_resize: str | None = None) -> ReleasedModel:
    """A released model from its file (``focal-pl export``'s output), ready to ``localize``.

    ``clusterer`` and ``mask_resize`` replace the release's (e.g. the official code's clustering:
    ``clusterer=Clusterer(algorithm="cosine_kmeans"), mask_resize="bilinear"``)."""
    return ReleasedModel(read_release(path), str(path), device, clusterer, mask_resize)
