"""Any image Pillow opens (a file, a PIL image or an array) as grey uint8 frames, ink set off from paper.

Uploads come in every mode Pillow knows, and its `convert("L")` is wrong for two families of
them: it clamps 16-bit and float pixels instead of scaling them (a pencil line at 20000 of 65535
becomes white paper) and drops transparency (white ink on a transparent sheet becomes white on
white). So each mode is made grey here: integer and float pixels scaled by the bit depth their
values use (a faint deep scan, too close together for 8 bits, over its own range), the alpha channel taken as the ink when the sheet is transparent or the colours draw
nothing, every frame of an animation or a multi-page file decoded (within the pixel limit), each
turned as its EXIF orientation says. The size is checked from the header before anything is
decoded, and every failure to decode is an [`ImageError`][quickdraw.data.image_decode.ImageError] with one message, `UNREADABLE`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence

from quickdraw.core.errors import InputError

log = logging.getLogger(__name__)

# The ink must be at least this much darker than the paper around it (0-255).
MIN_CONTRAST = 40
UNREADABLE = "That file could not be read as an image ({}). Save it as PNG or JPEG and try again."
# Full scales of the bit depths scanners, cameras and editors write; values are scaled by the
# smallest that holds them (12-bit camera data in a 16-bit file uses 4095, not 65535).
_FULL_SCALES = tuple(2**bits - 1 for bits in (8, 10, 12, 14, 16, 24, 32))
# Deep values (16-bit, float) too close together for 8 bits are stretched over their own range
# when it is this many times the spread of most values: ink on paper, not noise on a blank sheet
# (the extremes of 16 million Gaussian samples lie about 11 standard deviations apart).
_INK_OVER_NOISE = 16


class ImageError(InputError):
    """An image that cannot be read, or is too large; the message is written for a person."""


def limit_decoding(max_pixels: int) -> None:
    """Make Pillow itself refuse images far over `max_pixels` wherever it opens one in this process.

    Pillow raises `DecompressionBombError` from twice `MAX_IMAGE_PIXELS` and warns from once;
    the demo's own check refuses every image over the limit with a message, so the warning adds
    nothing. Called once when the demo starts: it changes Pillow's global setting.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)


def read_frames(
    image: np.ndarray | Image.Image | str | Path, max_pixels: int
) -> tuple[list[np.ndarray], int]:
    """Grey uint8 (H, W) frames of `image` and how many frames it has.

    A file's frames are decoded in order while their pixels add up to at most `max_pixels`, so
    the list can be shorter than the count. Raises [`ImageError`][quickdraw.data.image_decode.ImageError] for a file that cannot be
    decoded and for an image or frame over `max_pixels` (from its header, before decoding).
    """
    if isinstance(image, (str, Path)):
        return _file_frames(Path(image), max_pixels)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels)
        with _decoding(max_pixels):
            return [to_gray(image)], 1
    return [_array_gray(np.asarray(image), max_pixels)], 1


def _file_frames(path: Path, max_pixels: int) -> tuple[list[np.ndarray], int]:
    with _decoding(max_pixels), Image.open(path) as im:
        _check_size(im.width, im.height, max_pixels)  # from the header, before decoding
        count, frames, budget = getattr(im, "n_frames", 1), [], max_pixels
        for frame in ImageSequence.Iterator(im):
            _check_size(frame.width, frame.height, max_pixels)  # pages of a TIFF differ
            budget -= frame.width * frame.height
            if budget < 0 and frames:
                break
            frames.append(to_gray(ImageOps.exif_transpose(frame)))
        return frames, count


@contextmanager
def _decoding(max_pixels: int) -> Iterator[None]:
    """Any failure to decode becomes `UNREADABLE`: Pillow's decoders raise OSError, ValueError
    (a text or colour-profile chunk over 1 MB), SyntaxError, EOFError, struct.error, IndexError
    and more on damaged or hostile files, and a person gets one message for all of them."""
    try:
        yield
    except ImageError:
        raise
    except Image.DecompressionBombError:
        over = _megapixels(2 * Image.MAX_IMAGE_PIXELS)
        raise ImageError(_too_large(f"over {over} megapixels", max_pixels)) from None
    except Exception as e:  # noqa: BLE001  (see the docstring: the types are not enumerable)
        log.info("an image could not be decoded: %r", e)
        raise ImageError(UNREADABLE.format(type(e).__name__)) from None


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            _too_large(f"{width}x{height} ({_megapixels(width * height)} megapixels)", max_pixels)
        )
    if width * height == 0:
        raise ImageError(UNREADABLE.format(f"it is {width}x{height} pixels"))


def _megapixels(pixels: int) -> str:
    """`pixels` in megapixels to 3 digits, whole ones in full ("10,000", never "1e+04")."""
    mp = pixels / 1e6
    return f"{mp:.3g}" if mp < 1000 else f"{mp:,.0f}"


def _too_large(size: str, max_pixels: int) -> str:
    return (
        f"That image is {size}; the limit is {max_pixels / 1e6:g} megapixels. Use a smaller copy."
    )


def _array_gray(arr: np.ndarray, max_pixels: int) -> np.ndarray:
    """An array (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA of any numeric type as grey."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or arr.size == 0:
        raise ImageError(f"Expected a grey, RGB or RGBA image, got an array of shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ImageError(f"Expected an image of numbers, got an array of {arr.dtype}.")
    _check_size(arr.shape[1], arr.shape[0], max_pixels)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return to_gray(Image.fromarray(to_uint8(arr)))


def to_uint8(values: np.ndarray) -> np.ndarray:
    """`values` scaled to 0-255 by the range they use: uint8 as it is, other integers by the
    smallest common bit depth that holds them, floats within 0-1 by 255, anything with negative
    values by -1 to 1 when they fit, else by their own minimum and maximum; values too close together to show the ink's
    `MIN_CONTRAST` that way are stretched over their own range when some stand out from the
    rest (`_INK_OVER_NOISE`). NaN and infinities count as the nearest extreme."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == bool:
        return values.astype(np.uint8) * 255
    v = values.astype(np.float32)
    finite = np.isfinite(v)
    if not finite.any():
        raise ImageError("The image holds no pixel values (all are NaN or infinite).")
    lo, hi = float(v[finite].min()), float(v[finite].max())
    np.nan_to_num(v, copy=False, nan=hi, posinf=hi, neginf=lo)
    if lo < 0:  # -1 to 1 (a normalised image), else no scale is known but the values' own
        bottom, top = (-1.0, 1.0) if max(-lo, hi) <= 1 else (lo, hi)
    elif np.issubdtype(values.dtype, np.floating) and hi <= 1:
        bottom, top = 0.0, 1.0
    else:
        bottom, top = 0.0, next((s for s in _FULL_SCALES if hi <= s), hi)
    if (top - bottom) / 255 <= hi - lo < MIN_CONTRAST / 255 * (top - bottom) and _stands_out(v):
        bottom, top = lo, hi  # a faint scan (ink 30000 on paper 32000): 8 bits would flatten it
    v -= bottom
    v *= 255 / max(top - bottom, np.finfo(np.float32).tiny)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def _stands_out(values: np.ndarray) -> bool:
    """Whether the range of finite `values` is far wider than the spread of most of them (1.4826
    median absolute deviations: one standard deviation of Gaussian noise), on at most ~1M samples."""
    sample = values.ravel()[:: max(1, values.size // 1_000_000)]
    sample = sample[np.isfinite(sample)]
    spread = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
    return float(np.ptp(values[np.isfinite(values)])) > _INK_OVER_NOISE * spread


def to_gray(im: Image.Image) -> np.ndarray:
    """One decoded image of any mode as grey uint8 (H, W): the ink darker or lighter than the paper."""
    colour, alpha = _colour_and_alpha(im)
    if alpha is None or int(alpha.min()) == 255:
        return colour
    return _with_alpha(colour, alpha)


def _colour_and_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """The image's grey (uint8) and its alpha (uint8, or None when it has no transparency)."""
    mode, info = im.mode, im.info
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.asarray(im)
        alpha = None
        if isinstance(info.get("transparency"), int):  # one value marked transparent (tRNS)
            alpha = np.where(values == info["transparency"], 0, 255).astype(np.uint8)
        return to_uint8(values), alpha
    if mode == "LAB":  # its L band is the lightness, 0-255: exactly the grey wanted
        return np.asarray(im.getchannel("L")), None
    if mode in ("La", "RGBa"):  # premultiplied alpha: undo it before looking at the colours
        im = im.convert("LA" if mode == "La" else "RGBA")
    if im.mode in ("LA", "PA", "RGBA") or "transparency" in info:
        rgba = im.convert("RGBA")
        return np.asarray(rgba.convert("L")), np.asarray(rgba.getchannel("A"))
    return np.asarray(im.convert("L")), None


def _with_alpha(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Grey of a partly transparent image: the alpha is the ink when the sheet is transparent
    (most pixels are) or the visible colours are all alike (white, black or coloured ink on a
    transparent sheet, ink drawn in the alpha alone); otherwise the colours are the drawing,
    laid on their own paper colour where the image is transparent (not white: a chalkboard
    with transparent corners would gain white corners, then counted as ink)."""
    visible = colour[alpha >= 128]
    flat = visible.size == 0 or np.ptp(np.percentile(visible, [1, 99])) < MIN_CONTRAST
    if flat or np.median(alpha) < 128:
        return 255 - alpha
    a = alpha.astype(np.float32) / 255
    paper = float(np.median(visible))
    return np.rint(colour * a + paper * (1 - a)).astype(np.uint8)
