"""What the demo does between a drawing and a guess, free of any UI: limits, preprocessing, top-k.

Strokes from the browser arrive as Quick, Draw! raw drawings (`[[xs], [ys], [ts]]` per
stroke, canvas pixels and milliseconds) and go through exactly the path training data took:
[`parse_drawing`][quickdraw.data.parsing.parse_drawing] (Google's simplification), a
[`StrokeBatch`][quickdraw.data.strokes.StrokeBatch], then the checkpoint's own inputs
([`model_inputs`][quickdraw.inference.runner.model_inputs]: its raster, pen-move sequence, or each member's input
of a mixed ensemble), built by the shared inference path. The recorded timestamps travel with the
points (`StrokeBatch.times`, carried through the simplification as for raw training data), so a
model trained with `raster.time_source=ms` sees real time here too; with `order` (the default)
the time channel counts points of the simplified drawing, as in training.

Images (a photo or scan of a doodle) are traced into strokes by
[`quickdraw.data.images`][quickdraw.data.images] and drawn by [`rasterize_untimed`][quickdraw.data.raster.rasterize_untimed]
(stroke order and timing cannot be recovered from an image).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import torch
from PIL import Image

from quickdraw.core.errors import InputError
from quickdraw.data.formats.base import BadRow
from quickdraw.data.images import FRAME, ImageError, image_to_strokes, load_gray
from quickdraw.data.inputs import IMAGE, Arrays
from quickdraw.data.parsing import parse_timed_drawing
from quickdraw.data.raster import RasterSpec, rasterize_untimed, to_tensor
from quickdraw.data.strokes import StrokeBatch
from quickdraw.inference.runner import Render, check_tta, model_inputs, predict_proba
from quickdraw.models.loading import load_model

HINT = "Draw something on the canvas: the model guesses after every stroke."
NO_INK = (
    "No drawing found in that image: it needs dark lines on a light background, light on dark, "
    "or lines of any colour on a transparent background."
)
NEEDS_TIMES = (
    "This model was trained on the time of every point (raster.time_source=ms): "
    "send strokes as [xs, ys, ts], ts in ms since the first point, as the sketchpad does."
)
TOO_MUCH_INK = (
    "That image holds far more lines than a doodle; crop it to the drawing and try again."
)


@dataclass(frozen=True)
class Limits:
    """What one request may hold; anything larger is answered with a message, not processed."""

    max_points: int = 5000  # raw points per drawing, before simplification
    max_strokes: int = 200
    max_image_pixels: int = 16_000_000
    max_file_size: str = "10mb"  # uploads: enforced by Gradio before the file reaches the demo

    @property
    def max_json_chars(self) -> int:
        # Three numbers per point at up to ~16 characters each: a cap the JSON parser never exceeds.
        return 48 * self.max_points + 1024


class InputRejected(InputError):
    """Input the demo declines; the message is written for the person drawing."""


class EmptyDrawing(InputRejected):
    """Nothing to classify yet (empty canvas, blank image): the page shows a hint."""


@dataclass
class Guess:
    top: list[tuple[str, float]]  # the k most likely classes, best first
    image: (
        np.ndarray
    )  # (C, H, W) uint8: the network's image input (a gray view for sequence models)
    strokes: int  # after simplification (images: traced centre lines)
    points: int
    ms: float  # server-side time from input to probabilities

    @property
    def confidences(self) -> dict[str, float]:
        return dict(self.top)


class Guesser:
    """A model loaded once, turning each drawing or image into a `Guess` (its top-k classes)."""

    def __init__(self, model, limits: Limits = Limits(), top_k: int = 5, tta: str = "none") -> None:
        self.model = model.eval()
        self.inputs = model_inputs(model)
        # What the page shows: the image input, else the first raster a member reads, else gray.
        rasters = [s for s in self.inputs.values() if isinstance(s, RasterSpec)]
        self.spec: RasterSpec = self.inputs.get(IMAGE) or next(iter(rasters), RasterSpec())
        self.classes: list[str] = list(model.hparams.classes)
        self.limits = limits
        self.top_k = max(1, min(top_k, len(self.classes)))
        self.tta = check_tta(tta)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, limits: Limits = Limits(), top_k: int = 5, tta: str = "none"
    ) -> Guesser:
        """Load on CPU with `weights_only=True`; raises `CheckpointError` for foreign files."""
        return cls(load_model(path, map_location="cpu"), limits, top_k, tta)

    @property
    def description(self) -> str:
        net = getattr(self.model, "net", None)
        members = getattr(net, "num_members", None)
        arch = f"ensemble of {members}" if members else type(net).__name__
        arch = getattr(self.model, "arch", arch)  # exported models describe themselves
        inputs = " + ".join(spec.describe() for spec in self.inputs.values())
        return f"{arch}, {len(self.classes)} classes, input: {inputs}"

    # -- strokes ----------------------------------------------------------------------------------
    def parse_strokes(self, drawing: str | list) -> StrokeBatch:
        """A raw drawing (JSON text or lists) -> a one-drawing batch in the simplified frame."""
        return self._timed(simplified(self.raw_strokes(drawing), self.limits.max_points))

    def _timed(self, batch: StrokeBatch) -> StrokeBatch:
        """`batch`, refused with a message when the model draws real time and it has none."""
        if batch.times is None and any(
            isinstance(s, RasterSpec) and s.channels > 1 and s.time_source == "ms"
            for s in self.inputs.values()
        ):
            raise InputRejected(NEEDS_TIMES)
        return batch

    def raw_strokes(self, drawing: str | list) -> list:
        """A raw drawing (JSON text or lists) as its list of strokes, checked against the limits."""
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
        return drawing

    def top_of_prefixes(self, drawing: list, counts: list[int]) -> list[tuple[str, float]]:
        """The top guess and its probability for the first k strokes of a raw drawing, for each k
        in `counts`: each prefix simplified on its own (what the page saw when it was drawn),
        all guessed in one batch through the shared inference path."""
        prefixes = [simplified(drawing[:k], self.limits.max_points) for k in counts]
        batch = self._timed(StrokeBatch.concat(prefixes))
        probs = predict_proba(self.model, batch, tta=self.tta)
        best = probs.argmax(axis=1)
        return [(self.classes[c], float(probs[j, c])) for j, c in enumerate(best.tolist())]

    def guess_strokes(self, drawing: str | list) -> Guess:
        t0 = time.perf_counter()
        batch = self.parse_strokes(drawing)
        return self._guess(None, self.spec, batch, t0)

    # -- images -----------------------------------------------------------------------------------
    def image_strokes(self, image: np.ndarray | Image.Image | str | Path) -> StrokeBatch:
        """A photo or scan -> the strokes traced from it (a one-drawing batch)."""
        try:
            strokes = image_to_strokes(load_gray(image, self.limits.max_image_pixels))
        except ImageError as e:
            raise InputRejected(str(e)) from None
        if strokes is None:
            raise EmptyDrawing(NO_INK)
        drawing = [[s[:, 0].tolist(), s[:, 1].tolist()] for s in strokes]
        try:
            batch = simplified(drawing, max_points=FRAME * FRAME)
        except EmptyDrawing:
            raise EmptyDrawing(NO_INK) from None
        except InputRejected:
            raise InputRejected(TOO_MUCH_INK) from None
        return batch

    def _untimed(self, batch: StrokeBatch) -> dict[str, Arrays]:
        """The model's inputs from traced strokes: images drawn untimed (their order is unknown);
        a pen-move sequence follows the tracer's order, the only one there is."""
        return {
            name: rasterize_untimed(batch, spec) if isinstance(spec, RasterSpec) else spec(batch)
            for name, spec in self.inputs.items()
        }

    def guess_image(self, image: np.ndarray | Image.Image | str | Path) -> Guess:
        t0 = time.perf_counter()
        view = lambda batch: rasterize_untimed(batch, self.spec)  # noqa: E731
        return self._guess(self._untimed, view, self.image_strokes(image), t0)

    # -- the network ------------------------------------------------------------------------------
    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(B, C) class probabilities for uint8 model inputs."""
        return self.model.predict_proba(to_tensor(images)).float().cpu().numpy()

    def _guess(
        self,
        render: Render | None,
        view: Callable[[StrokeBatch], np.ndarray],
        batch: StrokeBatch,
        t0: float,
    ) -> Guess:
        """Top-k of `batch` made into inputs by `render` (None: the model's own), through the
        shared inference path (TTA included); `view` draws what the page shows."""
        probs = predict_proba(self.model, batch, tta=self.tta, render=render)[0]
        images = view(batch)  # what the page shows: the original view
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
        parsed = parse_timed_drawing(drawing, "raw", max_points=max_points)
    except BadRow as e:
        if e.reason == "empty_drawing":
            raise EmptyDrawing(HINT) from None
        if e.reason == "too_many_points":
            raise InputRejected(_too_big(e.detail)) from None
        raise InputRejected(f"The drawing could not be read ({e.reason}: {e.detail}).") from None
    return StrokeBatch.from_parsed([parsed])


def _too_big(what: str) -> str:
    return f"That drawing is too big for this demo ({what}). Undo a stroke or clear the canvas."
