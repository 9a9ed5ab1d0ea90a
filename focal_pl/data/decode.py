"""Decoding images and masks from files or bytes, with errors that name the file and the problem.

Images come back as uint8 H x W x 3 RGB whatever was stored (gray, CMYK, 16-bit, palette, RGBA);
masks as uint8 H x W in {0, 1} under a ``MaskRule`` (threshold, polarity, Columbia's colour code).
Anything that cannot be read raises ``BadInput``, which the data pipeline reports and skips.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps

# 16-bit and very large scans are legitimate inputs; beyond this many pixels a file is refused
# (PIL's own decompression-bomb guard, raised to an explicit error instead of a warning).
MAX_PIXELS = 1 << 28  # 268 M pixels, e.g. 16384 x 16384
EXIF_ORIENTATION = 0x0112


class BadInput(ValueError):
    """A file that cannot be used: the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class MaskRule:
    """How a stored mask becomes {0, 1} (1 = forged).

    kind: ``threshold`` (gray > 127, or > 0 when the file only holds 0/1), ``inverted`` (NIST:
    black = manipulated) or ``columbia`` (green = the spliced camera's region).
    """

    kind: Literal["threshold", "inverted", "columbia"] = "threshold"


THRESHOLD, INVERTED, COLUMBIA = MaskRule("threshold"), MaskRule("inverted"), MaskRule("columbia")


def _open(source: str | Path | bytes, what: str) -> Image.Image:
    """Open and fully decode with PIL; every failure becomes ``BadInput`` naming ``what``."""
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise BadInput(f"{what}: file does not exist")
        if path.stat().st_size == 0:
            raise BadInput(f"{what}: empty file (0 bytes)")
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data)
            if image.width * image.height > MAX_PIXELS:
                raise BadInput(
                    f"{what}: {image.width} x {image.height} pixels is over the "
                    f"{MAX_PIXELS:,}-pixel limit (decompression bomb guard)"
                )
            image.load()
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadInput(f"{what}: over the pixel limit (decompression bomb guard): {error}") from error
    except Image.UnidentifiedImageError as error:
        raise BadInput(f"{what}: not an image (unrecognized format)") from error
    except (OSError, SyntaxError, ValueError) as error:  # truncated / corrupt data
        raise BadInput(f"{what}: corrupt or truncated image data ({error})") from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return image


MIN_SIDE = 64  # below this many pixels on its short side an image is warned about (see small_image)


def small_image(name: str, size: tuple[int, int], image_size: int) -> str | None:
    """The warning for an image whose short side is below ``MIN_SIDE`` pixels: the model sees it
    upscaled many times to ``image_size`` and what it finds there means little. None otherwise."""
    height, width = size
    if min(height, width) >= MIN_SIDE:
        return None
    return (f"{name}: {width} x {height} pixels is below the {MIN_SIDE} px the model needs on the short side; "
            f"it is upscaled {image_size / min(height, width):.0f}x and its mask means little")


def to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded PIL image of any mode as uint8 H x W x 3 RGB (gray, 16-bit, float, palette,
    RGBA, CMYK, ...)."""
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit gray: scale to 8 bits
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        gray = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":  # float gray, in [0, 1] or [0, 255]
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max() <= 1 else 1.0
        gray = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return np.asarray(image.convert("RGBA"))[..., :3].copy()  # pixels as stored, alpha dropped
    return np.asarray(image.convert("RGB")).copy()  # L, P, CMYK, YCbCr, 1, RGB


def read_image(source: str | Path | bytes, name: str | None = None, upright: bool = False) -> np.ndarray:
    """uint8 H x W x 3 RGB. ``upright`` applies the EXIF orientation (for photos without masks);
    forensic data sets keep the stored pixel order, which is what their masks were drawn on."""
    what = name or str(source if not isinstance(source, bytes) else "<bytes>")
    image = _open(source, what)
    if upright:
        image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def exif_orientation(source: str | Path | bytes) -> int:
    """The EXIF orientation tag (1 = upright, 5-8 swap width and height); 1 when absent."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - a missing tag is no error
        return 1


def read_mask(source: str | Path | bytes, rule: MaskRule = THRESHOLD, name: str | None = None) -> np.ndarray:
    """uint8 H x W in {0, 1} (1 = forged) from a stored mask of any mode."""
    what = name or str(source if not isinstance(source, bytes) else "<bytes>")
    image = _open(source, what)
    if rule.kind == "columbia":
        rgb = np.asarray(image.convert("RGB")).astype(np.int16)
        red, green = rgb[..., 0], rgb[..., 1]
        return ((green > 127) & (green > red)).astype(np.uint8)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(image, dtype=np.float64)
        gray = gray / (gray.max() if gray.max() > 0 else 1.0) * 255.0
    elif image.mode in ("RGBA", "LA"):
        gray = np.asarray(image.convert("RGBA").convert("RGB").convert("L"), dtype=np.float64)
    else:
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    if rule.kind == "inverted":
        return (gray < 128).astype(np.uint8)
    if gray.max() <= 1:  # stored as 0/1, not 0/255
        return (gray > 0).astype(np.uint8)
    return (gray > 127).astype(np.uint8)


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 array (masks are stored this way in shards)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error to report, never half an image
