"""Data sources: anything that yields ``(image uint8 H x W x 3 RGB, mask uint8 H x W in {0,1}, meta)``.

Everything after a source (augmentation, resizing, batching, skipping bad files) is shared, so a
new layout is one small subclass. The public test and training sets are read in the layouts they
download in (no renaming): CASIA v1/v2, Columbia, COVERAGE, NIST16, IMD2020, MISD, FF++ frames,
plus the list formats of CAT-Net, IMDL-BenCo and the official FOCAL code, and a plain
``images/`` + ``masks/`` folder pair. ``repeat`` oversamples a source in a mix (CASIA-v2 x 40).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from focal_pl.files.paths import must_exist
from focal_pl.data.decode import (
    COLUMBIA,
    INVERTED,
    THRESHOLD,
    BadInput,
    MaskRule,
    exif_orientation,
    read_image,
    read_mask,
)

log = logging.getLogger(__name__)

Sample = tuple[np.ndarray, np.ndarray, dict[str, Any]]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
MASK_SUFFIXES = ("_gt", "_mask", "_groundtruth", "-gt", "_GT", "forged")


class ForgerySource(Dataset):
    """Base class of data sources. Subclasses implement ``__len__``, ``load`` and ``describe``.

    ``load`` may raise on bad input (a corrupt file, a missing mask): the data pipeline reports the
    item by ``describe(index)`` (its file, for file-based sources) and skips it.
    """

    name: str = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def __getitem__(self, index: int) -> Sample:
        return self.load(index)


@dataclass(frozen=True)
class Entry:
    """One item of a file-based source: the image, its mask (None = authentic) and the mask's rule."""

    image: Path
    mask: Path | None
    rule: MaskRule = THRESHOLD


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` in a stable (sorted) order."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in paths if is_image(p))


def load_pair(entry: Entry, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode an entry. An image without a mask (a user's photo, a pristine or authentic one) is
    turned as it is shown (its EXIF orientation applied); an image with a mask keeps its stored
    pixel order, which its mask was drawn on: a mask of another size is resized to the image
    (nearest) with a note, or matched to the EXIF-rotated image when that is what it was drawn on."""
    notes: list[str] = []
    if entry.mask is None:
        image = read_image(entry.image, name=str(entry.image), upright=True)
        return image, np.zeros(image.shape[:2], np.uint8), notes
    image = read_image(entry.image, name=str(entry.image))
    mask = read_mask(entry.mask, entry.rule, name=str(entry.mask))
    if mask.shape != image.shape[:2]:
        if exif_orientation(entry.image) != 1:
            upright = read_image(entry.image, name=str(entry.image), upright=True)
            if upright.shape[:2] == mask.shape:
                return upright, mask, ["image turned upright by its EXIF orientation to fit its mask"]
        notes.append(f"mask {mask.shape[1]}x{mask.shape[0]} resized to the image's "
                     f"{image.shape[1]}x{image.shape[0]} (nearest)")
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    return image, mask, notes


class FileSource(ForgerySource):
    """A source over a list of ``Entry`` (built by a subclass from a layout on disk).

    Args (shared by every reader):
        repeat: how many times the source is repeated in a mix (oversampling).
        include_authentic: also yield the set's authentic images, with all-zero masks.
    """

    has_truth = True  # an image without a mask is authentic (all zero), not unknown

    def __init__(self, repeat: int = 1, include_authentic: bool = False) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.repeat = repeat
        self.include_authentic = include_authentic
        self._entries: list[Entry] | None = None

    def scan(self) -> list[Entry]:
        """The entries of this layout (subclasses); called once, lazily."""
        raise NotImplementedError

    @property
    def entries(self) -> list[Entry]:
        if self._entries is None:
            entries = self.scan()
            if not self.include_authentic:
                entries = [e for e in entries if e.mask is not None]
            if not entries:
                raise ValueError(f"{self.name}: no images found ({self.where()})")
            self._entries = entries
        return self._entries

    def where(self) -> str:
        return ""

    def __len__(self) -> int:
        return len(self.entries) * self.repeat

    def entry(self, index: int) -> Entry:
        return self.entries[index % len(self.entries)]

    def describe(self, index: int) -> str:
        return str(self.entry(index).image)

    def load(self, index: int) -> Sample:
        entry = self.entry(index)
        image, mask, notes = load_pair(entry, self.name)
        for note in notes:
            log.info("%s: %s", entry.image, note)
        meta = {"name": str(entry.image), "source": self.name, "authentic": entry.mask is None,
                "truth": self.has_truth}
        return image, mask, meta


def distinct_items(source: ForgerySource) -> int:
    """Items of a source without its ``repeat`` (a mixing weight): what is written to shards once,
    and held out for validation once, not per repeat."""
    return len(source.entries) if isinstance(source, FileSource) else len(source)


def _root(root: str | Path, what: str) -> Path:
    """``root`` as an absolute path (messages and names then say where, whatever the working folder);
    ``FileNotFoundError`` naming it when it does not exist (``focal_pl.files.paths``)."""
    return must_exist(root, what)


def _index_by_stem(paths: list[Path]) -> dict[str, Path]:
    return {p.stem: p for p in paths}


class RootFolder(FileSource):
    """A set read from one folder tree, ``root``, that ``where`` names; ``root_label`` names it in
    the error when it does not exist."""

    root_label = "root"

    def __init__(self, root: str, repeat: int = 1, include_authentic: bool = False) -> None:
        super().__init__(repeat, include_authentic)
        self.root = _root(root, self.root_label)

    def where(self) -> str:
        return str(self.root)


# ---------------------------------------------------------------- plain layouts


class FolderPairs(FileSource):
    """``images/`` + ``masks/`` matched by file stem (a mask may add ``_gt``, ``_mask``, ...).
    Images without a mask are authentic (kept with ``include_authentic``).

    Args:
        images: the set's root holding ``images/`` and ``masks/``, or the folder of images itself
            (searched recursively).
        masks: folder of masks; None = ``masks/`` beside the images.
        mask_suffix: the exact suffix masks add to the image stem; None tries the usual ones.
        inverted: masks are black = forged.
    """

    name = "folder"

    def __init__(
        self, images: str, masks: str | None = None, mask_suffix: str | None = None,
        inverted: bool = False, repeat: int = 1, include_authentic: bool = False,
    ) -> None:
        super().__init__(repeat, include_authentic)
        folder = _root(images, "images folder")
        if masks is None and (folder / "images").is_dir():  # the set's root, as in the README's layout
            folder = folder / "images"
        self.images = folder
        self.masks = _root(masks, "masks folder") if masks else self.images.parent / "masks"
        self.mask_suffix = mask_suffix
        self.rule = INVERTED if inverted else THRESHOLD

    def where(self) -> str:
        return f"images in {self.images}, masks in {self.masks}"

    def scan(self) -> list[Entry]:
        if not self.masks.is_dir():
            raise FileNotFoundError(
                f"{self.name}: no masks folder {self.masks}; expected a root holding images/ and masks/ "
                f"(or give masks=...); for images without masks use ImageFolder"
            )
        masks = _index_by_stem(find_images(self.masks))
        suffixes = (self.mask_suffix,) if self.mask_suffix is not None else ("", *MASK_SUFFIXES)
        entries = []
        for image in find_images(self.images):
            if self.masks in image.parents:  # masks/ inside the images folder
                continue
            mask = next((masks[image.stem + s] for s in suffixes if image.stem + s in masks), None)
            entries.append(Entry(image, mask, self.rule))
        return entries


class ImageFolder(RootFolder):
    """A folder of a user's images to run on, without masks (no truth: no metrics are computed).

    Args:
        root: folder searched recursively for images.
    """

    name = "images"
    has_truth = False
    root_label = "image folder"

    def __init__(self, root: str) -> None:
        super().__init__(root, repeat=1, include_authentic=True)

    def scan(self) -> list[Entry]:
        return [Entry(path, None) for path in find_images(self.root)]


class PristineFolder(RootFolder):
    """Authentic photos only, for false alarms (paper Table VIII: 2000 pristine images each of
    ImageNet, COCO and VISION): every image under ``root`` (any layout: ImageNet's ``val/<synset>/``,
    COCO's ``val2017/``, VISION's ``<device>/<kind>/``), or ``count`` of them drawn with ``seed``
    (the same ones on every machine and run). Every image has an all-zero truth.

    Args:
        root: the set's folder, searched recursively.
        count: how many images to draw (None: all); more than there are is an error.
        seed: the draw's seed.
        name: the set's name in the tables (e.g. imagenet, coco, vision).
        subfolders: only images inside a folder of one of these names, at any depth (VISION's
            natural photos, as the paper takes them: ``[Nat, Flat]``; not ``NatFBH``, ``NatWA``, videos).
    """

    root_label = "pristine folder"

    def __init__(self, root: str, count: int | None = 2000, seed: int = 0, name: str = "pristine",
                 subfolders: list[str] | None = None) -> None:
        if count is not None and count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if subfolders is not None and not subfolders:
            raise ValueError("subfolders must name at least one folder, or be null (every image)")
        super().__init__(root, repeat=1, include_authentic=True)
        self.count, self.seed, self.name = count, seed, name
        self.subfolders = list(subfolders) if subfolders else None

    def scan(self) -> list[Entry]:
        found = find_images(self.root)
        if self.subfolders:
            wanted = set(self.subfolders)
            found = [p for p in found if wanted & set(p.relative_to(self.root).parts[:-1])]
            if not found:
                raise ValueError(f"{self.name}: no image under {self.root} inside a folder named "
                                 f"{' or '.join(self.subfolders)}")
        if self.count is not None and found:
            if self.count > len(found):
                raise ValueError(f"{self.name}: count {self.count} is more than the {len(found)} images in {self.root}")
            chosen = np.sort(np.random.default_rng(self.seed).choice(len(found), size=self.count, replace=False))
            found = [found[i] for i in chosen]
        return [Entry(path, None) for path in found]


# ---------------------------------------------------------------- public data sets


class CASIA(RootFolder):
    """CASIA v1 or v2 as downloaded with the community ground truth: tampered images (``Tp``,
    ``Sp``, ``CM`` folders, or anywhere under ``root``) with ``<stem>_gt.png`` masks anywhere under
    ``root`` (also v2's misnamed ``_gt3.png``); authentic images (``Au_*``) have no mask.
    """

    name = "casia"

    root_label = "CASIA root"

    def scan(self) -> list[Entry]:
        files = find_images(self.root)
        masks = {}
        for path in files:
            match = re.match(r"(.+)_gt\d*$", path.stem)
            if match:
                masks.setdefault(match.group(1), path)
        entries = []
        for path in files:
            stem = path.stem
            if re.search(r"_gt\d*$", stem) or stem.endswith("_combine"):
                continue
            if stem.startswith(("Au_", "au_")) or stem.endswith("_au"):
                entries.append(Entry(path, None))
            elif stem in masks:
                entries.append(Entry(path, masks[stem]))
            else:
                log.warning("%s: tampered image without a *_gt.png mask; left out", path)
        return entries


class Columbia(RootFolder):
    """Columbia uncompressed splicing: ``4cam_splc/*.tif`` with ``edgemask/<stem>_edgemask.jpg``
    (green = the spliced camera's region), ``4cam_auth/*.tif`` authentic; nesting may vary."""

    name = "columbia"

    root_label = "Columbia root"

    def scan(self) -> list[Entry]:
        files = find_images(self.root)
        edges = {p.stem[: -len("_edgemask")]: p for p in files if p.stem.endswith("_edgemask")}
        entries = []
        for path in files:
            if "edgemask" in path.stem or "edgemask" in path.parent.name:
                continue
            parts = {part.lower() for part in path.parts}
            if "4cam_auth" in parts:
                entries.append(Entry(path, None))
            elif path.stem in edges:
                entries.append(Entry(path, edges[path.stem], COLUMBIA))
        return entries


class Coverage(RootFolder):
    """COVERAGE: ``image/<N>t.tif`` (tampered) with ``mask/<N>forged.tif``; ``image/<N>.tif`` are
    the originals (authentic). Some masks differ in size from their image: resized (nearest)."""

    name = "coverage"

    root_label = "COVERAGE root"

    def scan(self) -> list[Entry]:
        images = find_images(self.root / "image") if (self.root / "image").is_dir() else find_images(self.root)
        masks = _index_by_stem(find_images(self.root / "mask")) if (self.root / "mask").is_dir() else {}
        entries = []
        for path in sorted(images, key=lambda p: (len(p.stem), p.stem)):
            match = re.fullmatch(r"(\d+)(t?)", path.stem)
            if not match:
                continue
            number, tampered = match.groups()
            if tampered:
                mask = masks.get(f"{number}forged")
                if mask is None:
                    log.warning("%s: no mask/%sforged.tif; left out", path, number)
                    continue
                entries.append(Entry(path, mask))
            else:
                entries.append(Entry(path, None))
        return entries


class NIST16(RootFolder):
    """NIST Nimble 2016 (NC2016_Test0613): the '|'-separated reference CSVs under ``reference/``
    give probe and mask (masks are inverted: black = manipulated). Non-target probes are authentic.

    Args:
        tasks: which reference CSVs to read: manipulation, removal, splice.
    """

    name = "nist16"
    root_label = "NIST16 root"

    def __init__(
        self, root: str, tasks: tuple[str, ...] = ("manipulation",), repeat: int = 1,
        include_authentic: bool = False,
    ) -> None:
        super().__init__(root, repeat, include_authentic)
        self.tasks = tuple(tasks)

    def scan(self) -> list[Entry]:
        entries, seen = [], set()
        for task in self.tasks:
            found = sorted(self.root.rglob(f"*{task}-ref.csv"))
            if not found:
                raise FileNotFoundError(f"NIST16: no *{task}-ref.csv under {self.root}")
            with found[0].open(newline="") as handle:
                for row in csv.DictReader(handle, delimiter="|"):
                    probe = row.get("ProbeFileName") or row.get("ImgFName")
                    mask = row.get("ProbeMaskFileName") or row.get("MaskFName") or ""
                    target = (row.get("IsTarget") or row.get("isTarget") or "").upper() in ("Y", "TRUE", "1")
                    if not probe or probe in seen:
                        continue
                    seen.add(probe)
                    mask_path = self.root / mask if target and mask else None
                    entries.append(Entry(self.root / probe, mask_path, INVERTED))
        return entries


class IMD2020(RootFolder):
    """IMD2020 (real-life manipulations): per-post folders with ``*_orig.*`` (authentic) and fakes
    whose masks are ``<fake stem>_mask.png``."""

    name = "imd2020"

    root_label = "IMD2020 root"

    def scan(self) -> list[Entry]:
        files = find_images(self.root)
        masks = {(p.parent, p.stem[: -len("_mask")]): p for p in files if p.stem.endswith("_mask")}
        entries = []
        for path in files:
            if path.stem.endswith("_mask"):
                continue
            if "orig" in path.stem:
                entries.append(Entry(path, None))
            elif (path.parent, path.stem) in masks:
                entries.append(Entry(path, masks[(path.parent, path.stem)]))
            else:
                log.warning("%s: fake without %s_mask.png; left out", path, path.stem)
        return entries


class MISD(RootFolder):
    """MISD (multiple image splicing): ``Sp/`` spliced images, ``Au/`` authentic, and
    ``Ground Truth Masks/<stem>/masks/*`` with one mask per spliced object (united here)."""

    name = "misd"

    root_label = "MISD root"

    def scan(self) -> list[Entry]:
        entries = []
        for path in find_images(self.root):
            parts = [p.lower() for p in path.relative_to(self.root).parts]
            if parts[0] == "au":
                entries.append(Entry(path, None))
            elif parts[0] == "sp":
                folder = next((d for d in self.root.iterdir() if d.is_dir() and "mask" in d.name.lower()), None)
                masks = folder / path.stem / "masks" if folder else None
                if masks is None or not masks.is_dir():
                    log.warning("%s: no '<masks folder>/%s/masks/'; left out", path, path.stem)
                    continue
                entries.append(Entry(path, masks))
        return entries

    def load(self, index: int) -> Sample:
        entry = self.entry(index)
        if entry.mask is None or entry.mask.is_file():
            return super().load(index)
        image = read_image(entry.image, name=str(entry.image))
        union = np.zeros(image.shape[:2], np.uint8)
        parts = find_images(entry.mask, recursive=False)
        if not parts:
            raise BadInput(f"{entry.mask}: no mask files")
        for part in parts:
            mask = read_mask(part, name=str(part))
            if mask.shape != union.shape:
                mask = cv2.resize(mask, union.shape[::-1], interpolation=cv2.INTER_NEAREST)
            union |= mask
        return image, union, {"name": str(entry.image), "source": self.name, "authentic": False}


class FaceForensics(FolderPairs):
    """FF++ frames with masks as localization papers ship them: a folder of frames and a folder of
    masks with the same file stems (``frames/`` + ``masks/``, searched recursively)."""

    name = "ffpp"
    path_arguments = ("root",)  # frames and masks name subfolders of root

    def __init__(
        self, root: str, frames: str = "frames", masks: str = "masks", repeat: int = 1,
        include_authentic: bool = False,
    ) -> None:
        base = _root(root, "FF++ root")
        super().__init__(str(base / frames), str(base / masks), repeat=repeat,
                         include_authentic=include_authentic)


# ---------------------------------------------------------------- list files


def _resolve(path: str, root: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else root / candidate


class ListFile(FileSource):
    """Base of list-file readers: ``path`` names the list; relative entries resolve against
    ``root`` (default: the list's own folder)."""

    def __init__(
        self, path: str, root: str | None = None, repeat: int = 1, include_authentic: bool = True,
    ) -> None:
        super().__init__(repeat, include_authentic)
        self.path = _root(path, f"{type(self).__name__} list")
        self.root = Path(root).expanduser() if root else self.path.parent

    def where(self) -> str:
        return str(self.path)

    def pairs(self) -> list[tuple[str, str | None]]:
        raise NotImplementedError

    def scan(self) -> list[Entry]:
        return [
            Entry(_resolve(image, self.root), _resolve(mask, self.root) if mask else None)
            for image, mask in self.pairs()
        ]


class CatNetList(ListFile):
    """CAT-Net's comma-separated lists (tampCOCO sp/cm/bcm/bcmc, CASIA, IMD, ...): the first two
    columns are image and mask, ``None`` for an authentic image; further columns are ignored."""

    name = "catnet"

    def pairs(self) -> list[tuple[str, str | None]]:
        out = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            columns = [c.strip() for c in line.split(",")]
            mask = columns[1] if len(columns) > 1 and columns[1] not in ("None", "") else None
            out.append((columns[0], mask))
        return out


class BenCoJson(ListFile):
    """IMDL-BenCo's JSON list ``[[image, mask], ...]`` with ``"Negative"`` for authentic images."""

    name = "benco"

    def pairs(self) -> list[tuple[str, str | None]]:
        try:
            items = json.loads(self.path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.path}: not valid JSON ({error})") from error
        if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
            raise ValueError(f"{self.path}: expected a list of [image, mask] pairs")
        return [(image, None if mask == "Negative" else mask) for image, mask in items]


class FocalNpy(ListFile):
    """The official FOCAL code's ``.npy`` file lists: an N x 2 array of (image, mask), '' = no mask."""

    name = "focal_npy"

    def pairs(self) -> list[tuple[str, str | None]]:
        array = np.load(self.path, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"{self.path}: expected an N x 2 array of paths, got shape {array.shape}")
        return [(str(image), str(mask) or None) for image, mask in array]
