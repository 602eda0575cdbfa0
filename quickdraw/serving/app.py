"""The demo's page: a sketchpad that guesses as you draw (`python -m quickdraw.demo`, [`quickdraw.cli`][quickdraw.cli]).

The page is plain Gradio: a `gr.HTML` canvas whose script (`static/sketchpad.js`) records
strokes with their order and timing, a `gr.Label` with the top guesses, the guess history of
the drawing with a game-style announcement and an optional "what are you drawing?" answer, the
model's input image, and an image upload. All preprocessing and prediction live in
[`quickdraw.serving.guesser`][quickdraw.serving.guesser]; the history, the acceptance rule and "got it after" in
[`quickdraw.serving.guessing`][quickdraw.serving.guessing].
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
from gradio import processing_utils
from gradio.utils import get_upload_folder, is_in_or_equal
from omegaconf import DictConfig

import quickdraw  # noqa: F401  (registers the ${project_root:} resolver)
from quickdraw.data.image_decode import UNREADABLE, limit_decoding
from quickdraw.deploy.runtime import load_backend
from quickdraw.serving.guesser import HINT, EmptyDrawing, Guess, Guesser, InputRejected, Limits
from quickdraw.serving.guessing import GuessHistory, announcement

log = logging.getLogger("quickdraw.demo")

STATIC = Path(__file__).parents[1] / "resources" / "sketchpad"
# The pad's markup, shared with the exported page (quickdraw/deploy/page). No ${...} or {{...}} in
# it: gr.HTML treats its template as a JS template and Handlebars.
PAD_HTML = (STATIC / "sketchpad.html").read_text()
VIEW_PX = 192  # each input channel is shown this wide, without smoothing: every pixel visible
IMAGE_NOTE = (
    "Uploads are binarised, cropped to the ink and thinned to the pen's centre line, then drawn "
    "by the training rasteriser. A photo has no stroke order: channels that encode time get a "
    "constant instead."
)
THEME = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])

Outputs = tuple[dict[str, float] | None, str, str]  # guesses, model-input view, status line
HistoryOutputs = tuple[str, str, str, GuessHistory]  # announcement, history, got-it line, state


def uploaded_file(payload: dict, cache_dir: str) -> str:
    """The file an image came in as (upload, paste or an API call's `data:` URL), never decoded.

    The image event skips Gradio's preprocessing (`preprocess=False`): that opened every upload
    with Pillow, so a file Pillow cannot identify (an iPhone HEIC photo, a PDF) failed there as a
    bare error, and it decoded a `data:` URL in full and re-encoded it as WebP before anything
    saw its size: 5-9 s of CPU and about 1 GB of memory for a 12,000 x 12,000 PNG in a 55 kB
    request. Here a data URL's bytes are written to Gradio's cache as they are, and the demo opens
    the file itself, checking its size from the header first ([`quickdraw.data.image_decode`][quickdraw.data.image_decode]).
    Raises `InputRejected` for a data URL that is not base64 and for a path that Gradio did not
    receive as an upload (a request naming a file of the server).
    """
    url, path = payload.get("url") or "", payload.get("path")
    if url.startswith("data:"):
        try:
            return processing_utils.save_base64_to_cache(url, cache_dir)
        except (binascii.Error, ValueError):
            raise InputRejected(UNREADABLE.format("a data URL that is not base64")) from None
    if not path or not any(is_in_or_equal(path, d) for d in (get_upload_folder(), cache_dir)):
        raise InputRejected(UNREADABLE.format("no uploaded file or data URL was sent"))
    return path


def input_view(image: np.ndarray | None) -> str:
    """The model's (C, H, W) input as an inline PNG, channels side by side (no temp files)."""
    if image is None:
        return '<div class="qd-view-empty">The model\'s input appears here.</div>'
    tiles = np.concatenate([np.pad(c, 1, constant_values=96) for c in image], axis=1)
    png = base64.b64encode(cv2.imencode(".png", tiles)[1].tobytes()).decode()
    c, h, w = image.shape
    names = " | ".join(["ink", "stroke order", "time"][:c]) if c == 3 else "ink"
    return (
        f'<div class="qd-view"><img alt="model input" src="data:image/png;base64,{png}" '
        f'style="width:{VIEW_PX * c}px;max-width:100%;image-rendering:pixelated;border-radius:6px">'
        f"<div>{w}x{h} px, {names}: what the network sees</div></div>"
    )


def respond(predict: Callable[[], Guess]) -> Outputs:
    """Run one prediction and turn it, or the reason there is none, into the page's outputs."""
    try:
        guess = predict()
    except EmptyDrawing as e:
        return None, input_view(None), str(e)
    except InputRejected as e:
        return None, input_view(None), f"**Not sent to the model:** {e}"
    strokes = f"{guess.strokes} stroke{'s' if guess.strokes != 1 else ''}"
    status = f"{strokes}, {guess.points} points after simplification, {guess.ms:.0f} ms"
    return guess.confidences, input_view(guess.image), status


def follow(
    guesser: Guesser, drawing: str, target: str | None, history: GuessHistory
) -> HistoryOutputs:
    """Bring `history` to `drawing` and render it: the announcement once the acceptance rule
    is met, the per-stroke table, and when the model got `target` (if given)."""
    try:
        strokes = guesser.raw_strokes(drawing)
        history.update(strokes, lambda counts: guesser.top_of_prefixes(strokes, counts))
    except InputRejected:
        pass  # the status line already says why (an empty canvas: the hint); the history stays
    step = history.announced_step
    said = f"### {announcement(step.word)}" if step else ""
    got = history.target_status(target, guesser.classes)
    return said, history.markdown(), got, history


def class_list(classes: list[str]) -> str:
    """The classes a model knows, alphabetically, as one Markdown paragraph: what to draw."""
    return ", ".join(sorted(classes, key=str.casefold))


def build_app(
    guesser: Guesser,
    checkpoint: str = "",
    live_ms: int = 150,
    accept_threshold: float | None = 0.9,
    why: str = "",
) -> gr.Blocks:
    """The page; the two prediction events are also the API (`/guess_strokes`, `/guess_image`).

    `why`: which run the checkpoint is and why it was chosen
    ([`quickdraw.core.discovery.Choice`][quickdraw.core.discovery.Choice]), shown under the title.
    """

    def on_strokes(drawing: str | None) -> Outputs:
        return respond(lambda: guesser.guess_strokes(drawing or "[]"))

    def on_history(drawing: str | None, target: str | None, history: GuessHistory | None):
        return follow(guesser, drawing or "[]", target, history or GuessHistory(accept_threshold))

    def on_image(payload: dict | None) -> Outputs:
        if payload is None:
            return None, input_view(None), HINT
        return respond(lambda: guesser.guess_image(uploaded_file(payload, image.GRADIO_CACHE)))

    with gr.Blocks(
        title="Quick, Draw! live", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as app:
        gr.Markdown(
            "# Quick, Draw! live\nDraw a doodle and watch the model guess after every stroke.  \n"
            f"Model: {guesser.description}"
            + (f" (`{Path(checkpoint).name}`)" if checkpoint else ""),
            elem_id="about",
        )
        if why:
            gr.Markdown(f"Serving {why}.", elem_id="why")
        with gr.Accordion(
            f"The {len(guesser.classes)} things this model knows: draw one of them",
            open=len(guesser.classes) <= 20,
            elem_id="classes",
        ):
            gr.Markdown(class_list(guesser.classes))
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                pad = gr.HTML(
                    value="[]",
                    html_template=PAD_HTML,
                    css_template=(STATIC / "sketchpad.css").read_text(),
                    js_on_load=(STATIC / "sketchpad.js").read_text(),
                    apply_default_css=False,
                    elem_id="sketchpad",
                    live_ms=live_ms,
                )
                image = gr.Image(
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    label="...or upload / paste a photo or scan of a doodle",
                    height=220,
                    elem_id="upload",
                )
                gr.Markdown(IMAGE_NOTE)
            with gr.Column(scale=2):
                status = gr.Markdown(HINT, elem_id="status")
                said = gr.Markdown("", elem_id="announce")
                label = gr.Label(
                    num_top_classes=guesser.top_k, label="Top guesses", elem_id="guesses"
                )
                target = gr.Textbox(
                    label="What are you drawing? (optional)",
                    placeholder="e.g. cat: the page then says when the model got it",
                    elem_id="target",
                )
                got = gr.Markdown("", elem_id="got")
                history_view = gr.Markdown(GuessHistory().markdown(), elem_id="history")
                view = gr.HTML(input_view(None), js_on_load=None, elem_id="model-input")
        outputs = [label, view, status]
        history = gr.State(None)  # this page's GuessHistory
        follow_outputs = [said, history_view, got, history]
        # always_last: while a guess is being computed only the newest drawing waits, never a backlog.
        pad.stroke(
            on_strokes,
            inputs=pad,
            outputs=outputs,
            api_name="guess_strokes",
            trigger_mode="always_last",
            show_progress="hidden",
        )
        # A second listener: /guess_strokes keeps its one input and three outputs for API clients.
        pad.stroke(
            on_history,
            inputs=[pad, target, history],
            outputs=follow_outputs,
            trigger_mode="always_last",
            show_progress="hidden",
            api_visibility="private",
        )
        target.change(
            on_history,
            inputs=[pad, target, history],
            outputs=follow_outputs,
            show_progress="hidden",
            api_visibility="private",
        )
        image.change(
            on_image,
            inputs=image,
            outputs=outputs,
            api_name="guess_image",
            show_progress="minimal",
            preprocess=False,  # the file as it came: see uploaded_file
        )
    return app


def launch(app: gr.Blocks, cfg: DictConfig, **kwargs) -> gr.Blocks:
    """Serve `app` with the config's network settings and limits (Pillow's own included)."""
    limit_decoding(cfg.limits.max_image_pixels)
    app.queue(max_size=cfg.queue.max_size, default_concurrency_limit=cfg.queue.concurrency)
    app.launch(
        server_name=cfg.server_name,
        server_port=cfg.server_port,
        share=cfg.share,
        max_file_size=cfg.limits.max_file_size,
        show_error=False,  # errors reach the page as a message, never as a traceback
        ssr_mode=False,
        theme=THEME,
        **kwargs,
    )
    return app


def load_guesser(cfg: DictConfig, ckpt: Path) -> Guesser:
    """The demo's guesser for `ckpt` (the demo's settings in `cfg`), warmed up."""
    model = load_backend(ckpt, cfg.backend, threads=cfg.threads, int8=cfg.int8)
    guesser = Guesser(model, Limits(**cfg.limits), cfg.top_k, cfg.tta)
    guesser.guess_strokes([[[0, 10, 20], [0, 10, 0], [0, 16, 33]]])  # warm-up, off the clock
    return guesser
