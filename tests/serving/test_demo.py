"""The demo's prediction logic: strokes and images agree, limits and bad input get messages, checkpoints load safely."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from quickdraw.core.checkpoints import CheckpointError
from quickdraw.data.parsing import parse_drawing
from quickdraw.data.raster import UNTIMED as UNKNOWN_TIME
from quickdraw.data.raster import RasterSpec
from quickdraw.data.strokes import StrokeBatch
from quickdraw.serving.app import build_app, input_view, launch, respond
from quickdraw.serving.guesser import (
    HINT,
    NO_INK,
    EmptyDrawing,
    Guesser,
    InputRejected,
    Limits,
)
from tests.helpers.checkpoints import save_untrained
from tests.helpers.commands import free_port
from tests.helpers.configs import RESNET, demo_config
from tests.helpers.drawings import DEMO_CLASSES

CLASSES = DEMO_CLASSES  # those conftest's demo_checkpoint tells apart


@pytest.fixture(scope="module")
def guesser(demo_checkpoint) -> Guesser:
    return Guesser.from_checkpoint(demo_checkpoint)


def scan(drawing: list, invert: bool = False, width: int = 5) -> np.ndarray:
    """The drawing as a photo-like RGB image: dark ink on off-white paper, with a margin."""
    xs = np.concatenate([s[0] for s in drawing])
    ys = np.concatenate([s[1] for s in drawing])
    img = np.full((int(ys.max()) + 70, int(xs.max()) + 50, 3), (238, 234, 226), np.uint8)
    for x, y, *_ in drawing:
        pts = np.stack([x, y], axis=1).round().astype(np.int32) + (20, 30)
        cv2.polylines(img, [pts], False, (40, 40, 70), width, cv2.LINE_AA)
    return 255 - img if invert else img


# -- strokes and images ----------------------------------------------------------------------------
def test_strokes_are_recognised(guesser, demo_drawings):
    guesses = [guesser.guess_strokes(json.dumps(d)) for _, d in demo_drawings]
    accuracy = np.mean(
        [g.top[0][0] == word for g, (word, _) in zip(guesses, demo_drawings, strict=True)]
    )
    assert accuracy >= 0.85
    for g in guesses:
        probs = [p for _, p in g.top]
        assert len(g.top) == len(CLASSES) and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1, abs=1e-4)


def test_model_input_is_the_training_rasterisation(guesser, demo_drawings):
    """The demo's input is parse_drawing + the checkpoint's RasterSpec: no second preprocessing."""
    _, drawing = demo_drawings[0]
    points, lengths = parse_drawing(drawing, "raw")
    batch = StrokeBatch(
        points, np.concatenate([[0], np.cumsum(lengths)]), np.array([0, len(lengths)])
    )
    expected = RasterSpec(**guesser.model.hparams.raster)(batch)[0]
    np.testing.assert_array_equal(guesser.guess_strokes(drawing).image, expected)


def test_a_drawing_as_strokes_and_as_an_image_gets_the_same_guess(guesser, demo_drawings):
    same, overlap = [], []
    for _, drawing in demo_drawings:
        from_strokes = guesser.guess_strokes(drawing)
        from_image = guesser.guess_image(scan(drawing))
        same.append(from_strokes.top[0][0] == from_image.top[0][0])
        a, b = from_strokes.image[0] > 0, from_image.image[0] > 0
        overlap.append((a & b).sum() / (a | b).sum())
    assert np.mean(same) >= 0.9, f"top-1 agreed on {sum(same)}/{len(same)} drawings"
    assert np.median(overlap) > 0.4  # the same lines, give or take a pixel of placement


def test_image_polarity_alpha_and_files_give_the_same_input(guesser, demo_drawings, tmp_path):
    _, drawing = demo_drawings[1]
    reference = guesser.guess_image(scan(drawing)).image
    ink = scan(drawing)[:, :, 0] < 128
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink * 255  # black ink on a transparent background
    cv2.imwrite(str(tmp_path / "ink.png"), rgba)
    cv2.imwrite(str(tmp_path / "scan.jpg"), scan(drawing)[:, :, ::-1])
    variants = {
        "light on dark": scan(drawing, invert=True),
        "grey": scan(drawing)[:, :, 0],
        "transparent png": str(tmp_path / "ink.png"),
        "jpeg file": tmp_path / "scan.jpg",
    }
    for name, image in variants.items():
        got = guesser.guess_image(image).image
        iou = ((got > 0) & (reference > 0)).sum() / ((got > 0) | (reference > 0)).sum()
        assert iou > 0.7, name


def test_temporal_model_gets_time_channels_and_images_the_documented_fallback(
    tmp_path, demo_drawings
):
    guesser = Guesser.from_checkpoint(save_untrained(tmp_path / "t.ckpt", RESNET, "temporal"))
    _, drawing = next(d for d in demo_drawings if len(d[1]) > 1)
    image = guesser.guess_strokes(drawing).image
    assert image.shape == (3, 32, 32)
    assert len(np.unique(image[1][image[0] > 0])) > 1  # stroke order varies along the drawing
    assert "ink | stroke order | time" in input_view(image)  # the page shows all three channels
    from_photo = guesser.guess_image(scan(drawing)).image
    ink = from_photo[0] > 0
    assert (
        ink.any()
        and (from_photo[1][ink] == UNKNOWN_TIME).all()
        and (from_photo[2][ink] == UNKNOWN_TIME).all()
    )
    assert not from_photo[1:, ~ink].any()


def test_ensembles_are_served_like_single_models(tmp_path, demo_drawings):
    ensemble = {
        "_target_": "quickdraw.models.components.ensemble.Ensemble",
        "member": RESNET,
        "num_members": 3,
    }
    guesser = Guesser.from_checkpoint(save_untrained(tmp_path / "e.ckpt", ensemble))
    guess = guesser.guess_strokes(demo_drawings[0][1])
    assert "ensemble of 3" in guesser.description
    assert sum(p for _, p in guess.top) == pytest.approx(1, abs=1e-4)


# -- limits, bad input, empty input ---------------------------------------------------------------
@pytest.fixture(scope="module")
def small_limits(demo_checkpoint) -> Guesser:
    return Guesser.from_checkpoint(
        demo_checkpoint, Limits(max_points=100, max_strokes=5, max_image_pixels=10_000)
    )


def line(n: int) -> list:
    return [list(range(n)), [i % 7 for i in range(n)], list(range(0, 16 * n, 16))]


@pytest.mark.parametrize(
    ("drawing", "expected"),
    [
        ([line(60), line(60)], "more than 100 points"),
        ([line(3)] * 6, "6 strokes; the limit is 5"),
        ("[" + " " * 10_000 + "]", "more than 100 points"),  # refused before parsing
    ],
)
def test_drawings_over_the_limits_get_a_message(small_limits, drawing, expected):
    with pytest.raises(InputRejected, match=expected) as err:
        small_limits.guess_strokes(drawing)
    assert not isinstance(err.value, EmptyDrawing)


def test_a_dense_scribble_is_refused_at_once(guesser):
    """4999 points zigzagging across the canvas: within max_points, but minutes of simplification."""
    n = 4999
    scribble = [[[500.0 * (i % 2) for i in range(n)], [0.1 * i for i in range(n)], list(range(n))]]
    t0 = time.perf_counter()
    with pytest.raises(InputRejected, match="too big"):
        guesser.guess_strokes(scribble)
    assert time.perf_counter() - t0 < 1


def test_images_over_the_pixel_limit_are_refused_before_decoding(small_limits, tmp_path):
    big = np.full((200, 100), 255, np.uint8)
    with pytest.raises(InputRejected, match="0.02 megapixels"):
        small_limits.guess_image(big)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    with pytest.raises(InputRejected, match="100x200"):
        small_limits.guess_image(tmp_path / "big.png")


@pytest.mark.parametrize(
    "drawing",
    ["not json", '{"strokes": 1}', '[[["a", "b"], [1, 2], [0, 1]]]', "[[[1, 2], [1], [0, 1]]]",
     "[[[1, 2], [1, 2], [0, 1], [5]]]", "[1, 2, 3]", '[[[1e400, 2], [1, 2], [0, 1]]]'],
)  # fmt: skip
def test_malformed_drawings_get_a_message(guesser, drawing):
    with pytest.raises(InputRejected, match="could not be read") as err:
        guesser.guess_strokes(drawing)
    assert not isinstance(err.value, EmptyDrawing)


@pytest.mark.parametrize("drawing", ["[]", "", None, [[[], [], []]]])
def test_an_empty_canvas_gets_the_hint(guesser, drawing):
    outputs = respond(lambda: guesser.guess_strokes(drawing or "[]"))
    assert outputs[0] is None and outputs[2] == HINT


def test_bad_images_get_a_message(guesser, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputRejected, match="could not be read as an image"):
        guesser.guess_image(tmp_path / "notes.png")
    with pytest.raises(InputRejected, match="grey, RGB or RGBA"):
        guesser.guess_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(EmptyDrawing, match=re.escape(NO_INK)):
        guesser.guess_image(np.full((50, 80, 3), 200, np.uint8))
    label, _, status = respond(lambda: guesser.guess_image(tmp_path / "notes.png"))
    assert label is None and status.startswith("**Not sent to the model:**")


# -- checkpoints ------------------------------------------------------------------------------------
class _Sneaky:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["DEMO_MARKER"]),))


def test_files_that_are_not_project_checkpoints_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_MARKER", str(tmp_path / "code-ran"))
    (tmp_path / "random.ckpt").write_bytes(os.urandom(256))
    torch.save({"state_dict": {}, "payload": _Sneaky()}, tmp_path / "pickle.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, tmp_path / "foreign.ckpt")
    (tmp_path / "plain.ckpt").write_bytes(pickle.dumps({"weights": [1, 2]}))
    for name in ("random", "pickle", "foreign", "plain", "missing"):
        with pytest.raises(CheckpointError):
            Guesser.from_checkpoint(tmp_path / f"{name}.ckpt")
    assert not (tmp_path / "code-ran").exists()


# -- the app ----------------------------------------------------------------------------------------
def test_defaults_are_safe():
    cfg = demo_config()
    assert cfg.server_name == "127.0.0.1" and cfg.share is False
    assert (
        cfg.limits.max_points > 0
        and cfg.limits.max_strokes > 0
        and cfg.limits.max_image_pixels == 16_000_000
    )


@pytest.mark.slow
def test_the_http_api_answers_strokes_and_images(guesser, demo_drawings, tmp_path):
    from gradio_client import Client, handle_file

    word, drawing = demo_drawings[0]
    cv2.imwrite(str(tmp_path / "doodle.png"), scan(drawing))
    app = build_app(guesser)
    launch(app, demo_config(server_port=free_port()), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(app.local_url, verbose=False)
        label, view, status = client.predict(json.dumps(drawing), api_name="/guess_strokes")
        assert label["label"] == word and "points after simplification" in status
        assert "data:image/png;base64," in view
        label, _, _ = client.predict(handle_file(tmp_path / "doodle.png"), api_name="/guess_image")
        assert label["label"] == word
        label, _, status = client.predict("[]", api_name="/guess_strokes")
        assert not label and status == HINT  # the client reads a cleared label as {}
    finally:
        app.close()


@pytest.mark.slow
def test_the_command_without_a_checkpoint_says_how_to_make_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "quickdraw.demo", f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "python -m quickdraw.train" in result.stdout + result.stderr
