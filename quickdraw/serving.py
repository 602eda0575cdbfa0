"""What the demo does between a drawing and a guess, free of any UI: limits, preprocessing, top-k.

Strokes from the browser arrive as Quick, Draw! raw drawings (``[[xs], [ys], [ts]]`` per
stroke, canvas pixels and milliseconds) and go through exactly the path training data took:
:func:`~quickdraw.data.readers.parse_drawing` (Google's simplification), a
:class:`~quickdraw.data.strokes.StrokeBatch`, then the checkpoint's own
:class:`~quickdraw.data.raster.RasterSpec`. The temporal encoding's time channel counts
points of the simplified drawing, as in training, so the recorded timestamps need no
separate treatment.

Images (a photo or scan of a doodle) have no strokes, so :func:`image_to_strokes` recovers
the pen's path: binarise against the local paper brightness (shading cancels out), drop
specks, crop to the ink, scale the longer side to 256 px, thin the ink to one-pixel centre
lines (Zhang-Suen) and walk those lines into polylines. From there an image is a drawing
like any other: Google's simplification, then the checkpoint's rasteriser, so position,
scale and line width match training. Stroke order and timing cannot be recovered from an
image; the documented fallback for encodings with time channels fills them with the middle
of the rasteriser's early-to-late ramp wherever there is ink ("drawn at no particular
moment") rather than invent an order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import orjson
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from quickdraw.data import raster
from quickdraw.data.raster import RasterSpec, to_tensor
from quickdraw.data.readers import BadRow, parse_drawing
from quickdraw.data.strokes import StrokeBatch
from quickdraw.inference import load_model, raster_spec

HINT = "Draw something on the canvas: the model guesses after every stroke."
NO_INK = (
    "No drawing found in that image: it needs dark lines on a light background (or light on dark)."
)
TOO_MUCH_INK = (
    "That image holds far more lines than a doodle; crop it to the drawing and try again."
)
# Images: the ink must be at least this much darker than the paper around it (0-255).
MIN_CONTRAST = 40
FRAME = 256  # images are traced at the resolution of the Quick, Draw! frame (0-255)
# Time channels of an image: the middle of the rasteriser's 255 (early) -> 80 (late) ramp.
UNKNOWN_TIME = (raster._FIRST + raster._LAST) // 2


@dataclass(frozen=True)
class Limits:
    """What one request may hold; anything larger is answered with a message, not processed."""

    max_points: int = 5000  # raw points per drawing, before simplification
    max_strokes: int = 200
    max_image_pixels: int = 16_000_000

    @property
    def max_json_chars(self) -> int:
        # Three numbers per point at up to ~16 characters each: a cap the JSON parser never exceeds.
        return 48 * self.max_points + 1024


class InputRejected(ValueError):
    """Input the demo declines; the message is written for the person drawing."""


class EmptyDrawing(InputRejected):
    """Nothing to classify yet (empty canvas, blank image): the page shows a hint."""


@dataclass
class Guess:
    top: list[tuple[str, float]]  # the k most likely classes, best first
    image: np.ndarray  # (C, H, W) uint8: exactly what the network was given
    strokes: int  # after simplification (images: traced centre lines)
    points: int
    ms: float  # server-side time from input to probabilities

    @property
    def confidences(self) -> dict[str, float]:
        return dict(self.top)


class Predictor:
    """A checkpoint loaded once, answering drawings and images with its top-k classes."""

    def __init__(self, model, limits: Limits = Limits(), top_k: int = 5) -> None:
        self.model = model.eval()
        self.spec: RasterSpec = raster_spec(model)
        self.classes: list[str] = list(model.hparams.classes)
        self.limits = limits
        self.top_k = max(1, min(top_k, len(self.classes)))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, limits: Limits = Limits(), top_k: int = 5
    ) -> Predictor:
        """Load on CPU with ``weights_only=True``; raises ``CheckpointError`` for foreign files."""
        return cls(load_model(path, map_location="cpu"), limits, top_k)

    @property
    def description(self) -> str:
        net = getattr(self.model, "net", None)
        members = getattr(net, "num_members", None)
        arch = f"ensemble of {members}" if members else type(net).__name__
        arch = getattr(self.model, "arch", arch)  # exported models describe themselves
        return (
            f"{arch}, {len(self.classes)} classes, {self.spec.size} px {self.spec.encoding} input"
        )

    # -- strokes ----------------------------------------------------------------------------------
    def parse_strokes(self, drawing: str | list) -> StrokeBatch:
        """A raw drawing (JSON text or lists) -> a one-drawing batch in the simplified frame."""
        lim = self.limits
        if isinstance(drawing, str):
            if len(drawing) > lim.max_json_chars:
                raise InputRejected(_too_big(f"more than {lim.max_points} points"))
            try:
                drawing = orjson.loads(drawing or "[]")
            except orjson.JSONDecodeError:
                raise InputRejected("The drawing could not be read (not valid JSON).") from None
        if not isinstance(drawing, list):
            raise InputRejected("The drawing could not be read: expected a list of strokes.")
        if len(drawing) > lim.max_strokes:
            raise InputRejected(_too_big(f"{len(drawing)} strokes; the limit is {lim.max_strokes}"))
        return simplified(drawing, lim.max_points)

    def predict_strokes(self, drawing: str | list) -> Guess:
        t0 = time.perf_counter()
        batch = self.parse_strokes(drawing)
        return self._guess(self.spec(batch), batch, t0)

    # -- images -----------------------------------------------------------------------------------
    def image_input(self, image: np.ndarray | str | Path) -> tuple[np.ndarray, StrokeBatch]:
        """A photo or scan -> the model's (1, C, H, W) input and the strokes traced from it."""
        strokes = image_to_strokes(load_gray(image, self.limits.max_image_pixels))
        if strokes is None:
            raise EmptyDrawing(NO_INK)
        drawing = [[s[:, 0].tolist(), s[:, 1].tolist()] for s in strokes]
        try:
            batch = simplified(drawing, max_points=FRAME * FRAME)
        except EmptyDrawing:
            raise EmptyDrawing(NO_INK) from None
        except InputRejected:
            raise InputRejected(TOO_MUCH_INK) from None
        ink = replace(self.spec, encoding="gray")(batch)
        if self.spec.channels == 1:
            return ink, batch
        time_planes = (ink * np.float32(UNKNOWN_TIME / 255)).astype(np.uint8)
        return np.concatenate([ink] + [time_planes] * (self.spec.channels - 1), axis=1), batch

    def predict_image(self, image: np.ndarray | str | Path) -> Guess:
        t0 = time.perf_counter()
        images, batch = self.image_input(image)
        return self._guess(images, batch, t0)

    # -- the network ------------------------------------------------------------------------------
    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(B, C) class probabilities for uint8 model inputs."""
        return self.model.predict_proba(to_tensor(images)).float().cpu().numpy()

    def _guess(self, images: np.ndarray, batch: StrokeBatch, t0: float) -> Guess:
        probs = self.probabilities(images)[0]
        best = np.argsort(-probs)[: self.top_k]
        return Guess(
            top=[(self.classes[i], float(probs[i])) for i in best],
            image=images[0],
            strokes=len(batch.stroke_offsets) - 1,
            points=len(batch.points),
            ms=(time.perf_counter() - t0) * 1000,
        )


def simplified(drawing: list, max_points: int) -> StrokeBatch:
    """A raw drawing through the shared reader (Google's simplification) as a one-drawing batch."""
    try:
        points, lengths = parse_drawing(drawing, "raw", max_points=max_points)
    except BadRow as e:
        if e.reason == "empty_drawing":
            raise EmptyDrawing(HINT) from None
        if e.reason == "too_many_points":
            raise InputRejected(_too_big(e.detail)) from None
        raise InputRejected(f"The drawing could not be read ({e.reason}: {e.detail}).") from None
    stroke_offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=stroke_offsets[1:])
    return StrokeBatch(points, stroke_offsets, np.array([0, len(lengths)], np.int64))


def _too_big(what: str) -> str:
    return f"That drawing is too big for this demo ({what}). Undo a stroke or clear the canvas."


# -- images to strokes -----------------------------------------------------------------------------
def load_gray(image: np.ndarray | str | Path, max_pixels: int) -> np.ndarray:
    """Grey uint8 (H, W) from a file or an array (grey, RGB or RGBA); transparency becomes white paper."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:
                _check_size(im.width, im.height, max_pixels)  # from the header, before decoding
                im = ImageOps.exif_transpose(im)
                return _pil_gray(im)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
            raise InputRejected(
                f"That file could not be read as an image ({type(e).__name__})."
            ) from None
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or arr.size == 0:
        raise InputRejected(
            f"Expected a grey, RGB or RGBA image, got an array of shape {arr.shape}."
        )
    _check_size(arr.shape[1], arr.shape[0], max_pixels)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return _pil_gray(
        Image.fromarray(arr.squeeze(2) if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    )


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputRejected(
            f"That image is {width}x{height} ({width * height / 1e6:.3g} megapixels); "
            f"the limit is {max_pixels / 1e6:g} megapixels. Use a smaller copy."
        )


def _pil_gray(im: Image.Image) -> np.ndarray:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return np.asarray(im.convert("L"))


def image_to_strokes(gray: np.ndarray, work: int = 1024) -> list[np.ndarray] | None:
    """The ink's centre lines as polylines of (x, y) pixels (longer side ~256); None without ink.

    ``work``: larger images are first shrunk to this longer side (a doodle needs no more).
    """
    h, w = gray.shape
    if max(h, w) > work:
        f = work / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if np.median(gray) < 128:  # light ink on a dark background: make the ink dark
        gray = 255 - gray
    # How much darker each pixel is than the paper around it: shading across a photo cancels out.
    k = max(3, (max(gray.shape) // 32) | 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    ink = cv2.subtract(cv2.medianBlur(cv2.dilate(gray, disc), k), gray)
    if int(ink.max()) < MIN_CONTRAST:
        return None
    _, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    mask[ink < MIN_CONTRAST // 2] = 0
    mask = _drop_specks(mask)
    if not mask.any():
        return None
    x, y, bw, bh = cv2.boundingRect(mask)
    crop, side = mask[y : y + bh, x : x + bw], max(bw, bh)
    if side > FRAME:  # shrinking: widen lines first so the thinnest still cover their pixels
        f = int(np.ceil(side / FRAME))
        crop = cv2.dilate(crop, np.ones((f, f), np.uint8))
    scale = FRAME / side
    size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    strokes = trace(thin(cv2.resize(crop, size, interpolation=interp) >= 128))
    return strokes or None


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Remove connected blobs far smaller than the drawing (dust, JPEG noise); dots of ink stay."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= max(3, 0.002 * areas.sum())])
    return np.where(keep[labels], np.uint8(255), np.uint8(0))


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to one-pixel-wide, 8-connected centre lines."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            # neighbours clockwise from north: P2 .. P9
            p = [img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:],
                 img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]]  # fmt: skip
            count = sum(q.astype(np.int8) for q in p)
            transitions = sum(
                ((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int8) for i in range(8)
            )
            if step == 0:
                side = (p[0] & p[2] & p[4]) | (p[2] & p[4] & p[6])
            else:
                side = (p[0] & p[2] & p[6]) | (p[0] & p[4] & p[6])
            remove = (c == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & (side == 0)
            if remove.any():
                c[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


# Straight neighbours before diagonal ones: walks then follow staircases instead of cutting them.
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))


def trace(skeleton: np.ndarray) -> list[np.ndarray]:
    """Walk one-pixel-wide lines into (N, 2) x, y polylines, from line ends in reading order.

    A walk that starts next to an already traced pixel begins there, so branches stay joined
    at junctions; a walk that comes back to its start closes the loop (circles stay closed).
    """
    ys, xs = np.nonzero(skeleton)
    pixels = set(zip(xs.tolist(), ys.tolist(), strict=True))

    def around(p: tuple[int, int]) -> list[tuple[int, int]]:
        return [q for dx, dy in _STEPS if (q := (p[0] + dx, p[1] + dy)) in pixels]

    ends_first = sorted(pixels, key=lambda p: (len(around(p)) != 1, p[1], p[0]))
    seen: set[tuple[int, int]] = set()
    strokes = []
    for start in ends_first:
        if start in seen:
            continue
        seen.add(start)
        path = [q for q in around(start) if q in seen][:1] + [start]
        cur = start
        while (nxt := next((q for q in around(cur) if q not in seen), None)) is not None:
            seen.add(nxt)
            path.append(nxt)
            cur = nxt
        if len(path) > 3 and path[0] in around(cur):
            path.append(path[0])
        strokes.append(np.array(path, np.float64))
    return strokes


# -- which checkpoint to serve ----------------------------------------------------------------------
def best_checkpoint(run_dir: str | Path) -> Path | None:
    """A training run's best checkpoint: ``checkpoints/best.ckpt``, else ``metrics.json``'s best_ckpt."""
    run = Path(run_dir)
    link = run / "checkpoints" / "best.ckpt"
    if link.is_file():
        return link.resolve()
    metrics = run / "metrics.json"
    if metrics.is_file():
        try:
            best = json.loads(metrics.read_text()).get("best_ckpt")
        except (ValueError, OSError):
            best = None
        if best and Path(best).is_file():
            return Path(best)
    return None


def latest_best_checkpoint(runs_root: str | Path) -> Path:
    """The best checkpoint of the most recently started training run under ``runs_root``."""
    root = Path(runs_root)
    runs = {p.parent.parent for p in root.glob("**/checkpoints/best.ckpt")}
    runs |= {p.parent for p in root.glob("**/metrics.json")}

    def started(run: Path) -> float:
        # Hydra writes .hydra/config.yaml when a run starts; the folder's own mtime moves later.
        marker = run / ".hydra" / "config.yaml"
        return (marker if marker.exists() else run).stat().st_mtime

    for run in sorted(runs, key=started, reverse=True):
        ckpt = best_checkpoint(run)
        if ckpt is not None:
            return ckpt
    raise FileNotFoundError(
        f"No trained checkpoint found under {root}. Train one first with `python -m quickdraw.train` "
        "(seconds: `python -m quickdraw.train experiment=smoke`), or pass ckpt_path=PATH or run_dir=RUN."
    )
