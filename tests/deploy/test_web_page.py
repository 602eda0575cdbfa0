"""The exported page in headless Chromium: its JavaScript preprocessing equals Python's, and it guesses offline.

Generated drawings always run (CI has no ../shared); the real sample's raw drawings run when present.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from quickdraw.data import synthetic
from quickdraw.inference.runner import predict_proba
from quickdraw.models.loading import load_model
from quickdraw.serving.guesser import Guesser, InputRejected
from quickdraw.serving.guessing import GuessHistory
from quickdraw.testing.browser import (
    CHROMIUM,
    IDLE,
    RUN_JS,
    WITHOUT_RAW_POINTER_EVENTS,
    PageSession,
    draw,
    draw_synthetic,
    open_page,
    serve,
)
from quickdraw.training.fit import train
from tests.helpers.commands import run_export
from tests.helpers.configs import compose_train
from tests.helpers.drawings import DEMO_CLASSES as CLASSES
from tests.helpers.drawings import sequence_edge_drawings
from tests.helpers.guessing_cases import ANNOUNCEMENT_CASES
from tests.helpers.paths import SAMPLE
from tests.helpers.sketching import changing_drawing, raw, ring, said_after_each_stroke, top_words

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found (make browser)"),
]


@pytest.fixture(scope="module")
def page_dir(demo_checkpoint, tmp_path_factory) -> Path:
    """`python -m quickdraw.export ... format=web` of the demo's tiny model; needs `make web-deps`."""
    return run_export(tmp_path_factory.mktemp("page"), f"ckpt_path={demo_checkpoint}", "format=web")


@pytest.fixture(scope="module")
def session(page_dir):
    with open_page(page_dir) as s:
        yield s


def compare(session, checkpoint, drawings: list) -> dict[str, float]:
    """Page vs Python on raw drawings: pixel agreement, ink IoU, identical images (the model's
    input, or a sequence model's preview), top-1 agreement, max |p_page - p_python|."""
    guesser = Guesser(load_model(checkpoint))
    page = session.run(drawings)
    agree, iou, same, top1, dp = [], [], 0, 0, 0.0
    for d, got in zip(drawings, page, strict=True):
        py = guesser.guess_strokes(d)
        probs = predict_proba(guesser.model, guesser.parse_strokes(d))[0]
        dp = max(dp, float(np.abs(probs - np.array(got["probs"])).max()))
        mine, theirs = py.image.ravel(), np.array(got["image"], np.uint8)
        agree.append((mine == theirs).mean())
        ink_a, ink_b = mine > 0, theirs > 0
        iou.append((ink_a & ink_b).sum() / max(1, (ink_a | ink_b).sum()))
        same += bool((mine == theirs).all())
        top1 += py.top[0][0] == guesser.classes[int(np.argmax(got["probs"]))]
    n = len(drawings)
    figures = {"drawings": n, "pixel agreement": float(np.mean(agree)), "IoU": float(np.mean(iou)),
               "identical images": same / n, "top-1 agreement": top1 / n, "max |dp|": dp}  # fmt: skip
    shown = (f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
    print("\n" + ", ".join(list(shown)[:-1]) + f", max |dp| {dp:.1e}")
    return figures


def assert_parity(figures: dict[str, float]) -> None:
    # The JavaScript mirrors OpenCV's integer drawing code and numpy's float64 arithmetic, so
    # images are expected identical; the tolerance leaves room for a last-ulp difference in
    # Math.hypot (RDP distances) moving one point in a rare drawing.
    assert figures["pixel agreement"] >= 0.999
    assert figures["IoU"] >= 0.99
    assert figures["identical images"] >= 0.99
    assert figures["top-1 agreement"] >= 0.99


def test_page_preprocessing_equals_python_on_generated_drawings(session, demo_checkpoint, tmp_path):
    drawings = []
    for word in CLASSES:
        path = synthetic.write_raw_ndjson(tmp_path / f"{word}.ndjson", word, 60, seed=11)
        drawings += [json.loads(line)["drawing"] for line in path.read_text().splitlines()]
    figures = compare(session, demo_checkpoint, drawings)
    assert figures["drawings"] >= 200
    assert_parity(figures)


def real_drawings(n: int = 300) -> list:
    """The first `n` raw test drawings of the real sample, or a skip saying where it was looked for."""
    path = SAMPLE / "test_raw.csv"
    if not path.is_file():
        pytest.skip(f"real Quick, Draw! sample not found at {SAMPLE}")
    with open(path, newline="") as f:
        return [json.loads(row["drawing"]) for row in islice(csv.DictReader(f), n)]


def test_page_preprocessing_equals_python_on_real_drawings(session, demo_checkpoint):
    assert_parity(compare(session, demo_checkpoint, real_drawings()))


@pytest.fixture(scope="module")
def transformer_checkpoint(tiny_store, tmp_path_factory) -> Path:
    """The stroke Transformer of the issue's short run (one layer, 32 wide), one epoch on the tiny
    generated store, reading the first 32 points (real drawings are often longer: truncated)."""
    out = tmp_path_factory.mktemp("transformer")
    metrics = train(compose_train(
        out, f"data.store={tiny_store}", "data.test_per_class=8", "experiment=strokes_transformer",
        "trainer.max_epochs=1", "model.net.layers=1", "model.net.d_model=32", "model.net.ff=64",
        "data.inputs.sequence.max_points=32",
    ))  # fmt: skip
    return Path(metrics["best_ckpt"])


def test_a_transformer_page_guesses_as_python_does(session, transformer_checkpoint, tmp_path):
    """The page of a stroke-sequence export feeds the graph pen moves (sequence.js) equal to
    Python's: the same probabilities on the sample's raw test drawings (else generated ones) and
    on drawings of one point, one stroke and past max_points; its int8 page guesses too."""
    folder = run_export(tmp_path / "fp32", f"ckpt_path={transformer_checkpoint}", "format=web")
    assert json.loads((folder / "model.json").read_text())["input"]["kind"] == "sequence"
    try:
        drawings = real_drawings()
    except pytest.skip.Exception:
        path = synthetic.write_raw_ndjson(tmp_path / "raw.ndjson", "circle", 60, seed=11)
        drawings = [json.loads(line)["drawing"] for line in path.read_text().splitlines()]
    drawings += sequence_edge_drawings(32)
    int8 = run_export(tmp_path / "int8", f"ckpt_path={transformer_checkpoint}", "format=web",
                      "quantize=int8", "quantization.mode=dynamic", "web.model=int8")  # fmt: skip
    with tab_of(session, folder) as (page, _):
        figures = compare(PageSession(page), transformer_checkpoint, drawings)
        about = page.locator("#about").text_content()
        assert "StrokeTransformer" in about and "pen moves of its first 32 points" in about
        draw(page, ring())
        page.wait_for_function(IDLE)
        assert page.locator("#guesses li").count() == 4
    (out,), _ = run_in_tab(session, int8, [CIRCLE_DRAWING])
    assert_parity(figures)
    assert figures["max |dp|"] <= 1e-4
    assert abs(sum(out["probs"]) - 1) < 1e-3


@pytest.fixture(scope="module")
def page_model_checkpoint(tiny_store, tmp_path_factory) -> Path:
    """experiment=page_model (the page's timm network), one short run on the tiny generated store."""
    out = tmp_path_factory.mktemp("page-model")
    metrics = train(compose_train(
        out, f"data.store={tiny_store}", "data.test_per_class=8", "experiment=page_model",
        "trainer.max_epochs=1", "data.raster.size=64",
    ))  # fmt: skip
    return Path(metrics["best_ckpt"])


@pytest.fixture(scope="module")
def distilled_checkpoint(tiny_store, page_model_checkpoint, tmp_path_factory) -> Path:
    """A student (MobileNetV3-Small-050) of experiment=distill against the page model's run."""
    out = tmp_path_factory.mktemp("distilled")
    metrics = train(compose_train(
        out, f"data.store={tiny_store}", "data.test_per_class=8", "experiment=distill",
        f"model.objective.teacher={page_model_checkpoint}", "model.net.name=mobilenetv3_small_050",
        "trainer.max_epochs=1", "data.raster.size=64",
    ))  # fmt: skip
    return Path(metrics["best_ckpt"])


@pytest.mark.parametrize("which", ["page_model_checkpoint", "distilled_checkpoint"])
def test_a_timm_page_and_a_distilled_students_page_guess_as_python_does(
    session, which, request, tmp_path
):
    """Issue 29's short runs of a timm network (the page's) and of a distilled student: their
    ONNX export agrees with PyTorch (onnxruntime, top-1 >= 0.999 on the sample's raw test
    drawings, else generated ones) and their page guesses in Chromium as Python does."""
    from quickdraw.deploy.runtime import load_backend

    checkpoint = request.getfixturevalue(which)
    folder = run_export(tmp_path / "page", f"ckpt_path={checkpoint}", "format=web")
    try:
        drawings = real_drawings()
    except pytest.skip.Exception:
        path = synthetic.write_raw_ndjson(tmp_path / "raw.ndjson", "circle", 60, seed=11)
        drawings = [json.loads(line)["drawing"] for line in path.read_text().splitlines()]
    guesser = Guesser(load_model(checkpoint))
    onnx = load_backend(folder / "model.onnx", "onnx")
    batches = [guesser.parse_strokes(d) for d in drawings]
    ref = np.concatenate([predict_proba(guesser.model, b) for b in batches])
    got = np.concatenate([predict_proba(onnx, b) for b in batches])
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.999 and np.abs(got - ref).max() <= 1e-4
    with tab_of(session, folder) as (page, _):
        figures = compare(PageSession(page), checkpoint, drawings)
    assert_parity(figures)
    assert figures["top-1 agreement"] >= 0.999 and figures["max |dp|"] <= 1e-4


def test_drawing_with_the_mouse_updates_the_guesses_with_no_request(session):
    page = session.page
    session.requests.clear()
    assert page.locator("#guesses li").count() == 0
    circle = [(0.5 + 0.3 * math.cos(2 * math.pi * i / 36), 0.5 + 0.3 * math.sin(2 * math.pi * i / 36))
              for i in range(37)]  # fmt: skip
    draw(page, circle)
    page.wait_for_function(
        "window.quickdraw.state.waiting.length === 0 && !window.quickdraw.state.busy"
    )
    assert page.locator("#guesses li").count() == 5 or page.locator("#guesses li").count() == len(
        CLASSES
    )
    assert page.locator("#guesses li .name").first.text_content() == "circle"
    assert (
        page.evaluate("window.quickdraw.state.guesses") > 10
    )  # guessed during the stroke, not only after
    assert "1 stroke" in page.locator("#status").text_content()
    # Every answered move's latency is accounted for by its stages (input, queue, preprocess,
    # network, show), none negative.
    latencies, stages = page.evaluate(
        "[window.quickdraw.state.latencies, window.quickdraw.state.stages]"
    )
    assert len(stages) == len(latencies) > 10
    for total, parts in zip(latencies, stages, strict=True):
        assert len(parts) == 5 and min(parts) >= -1e-6
        assert sum(parts) == pytest.approx(total, abs=1e-3)
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("document.querySelectorAll('#guesses li').length === 0")
    assert session.requests == []  # everything came with the page


def new_tab(session, url: str | None = None, init_script: str | None = None, **options):
    """Another tab of the session's browser (one Playwright per process), loading `url` (default:
    the session's page); returns it and the list of every URL it requests."""
    page = session.page.context.browser.new_page(viewport=session.page.viewport_size, **options)
    if init_script:
        page.add_init_script(init_script)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url or session.page.url)
    return page, requests


@contextmanager
def tab_of(session, folder: Path):
    """The page of another export `folder` in a tab of the session's browser (one Playwright per
    process), ready; yields it and every URL it requests."""
    with serve(folder) as url:
        page, requests = new_tab(session, url)
        try:
            page.wait_for_function("window.quickdraw && window.quickdraw.ready", timeout=60_000)
            yield page, requests
        finally:
            page.close()


def run_in_tab(session, folder: Path, drawings: list) -> tuple[list[dict], list[str]]:
    """Raw drawings through the page of `folder` (as `PageSession.run`); returns the outputs and
    every URL the tab requested."""
    with tab_of(session, folder) as (page, requests):
        return page.evaluate(RUN_JS, drawings), requests


def test_raw_and_frame_aligned_moves_record_the_same_drawing(session):
    """Moves by pointerrawupdate (this Chromium, on localhost) and by pointermove (browsers without
    it) give the pad the same points, and both get guesses while drawing."""
    zigzag = [(0.2 + 0.6 * i / 30, 0.4 + 0.2 * (i % 2)) for i in range(31)]
    idle = "window.quickdraw.state.waiting.length === 0 && !window.quickdraw.state.busy"
    recorded = {}
    plain, _ = new_tab(session, init_script=WITHOUT_RAW_POINTER_EVENTS)
    plain.wait_for_function("window.quickdraw && window.quickdraw.ready", timeout=60_000)
    try:
        for name, page in (("pointerrawupdate", session.page), ("pointermove", plain)):
            assert page.evaluate("'onpointerrawupdate' in window") == (name == "pointerrawupdate")
            page.get_by_role("button", name="Clear").click()
            page.evaluate("window.quickdraw.state.guesses = 0")
            draw(page, zigzag, steps=4)
            page.wait_for_function(idle)
            assert page.evaluate("window.quickdraw.state.guesses") > 10, name
            recorded[name] = json.loads(page.evaluate("window.quickdraw.state.latest"))
    finally:
        plain.close()
    raw, aligned = recorded["pointerrawupdate"], recorded["pointermove"]
    assert len(raw) == len(aligned) == 1
    assert len(raw[0][0]) == 1 + 30 * 4  # every move's point, none lost or doubled
    assert raw[0][:2] == aligned[0][:2]  # same x and y, point for point


def test_strokes_made_by_chromium_itself_reach_the_pad_and_get_guesses(session):
    """The benchmark's synthetic input (python -m benchmarks.export --input synthetic): every move is a
    real pointer event to the pad, and the page guesses while the stroke goes on."""
    page = session.page
    page.get_by_role("button", name="Clear").click()
    page.evaluate("window.quickdraw.state.guesses = 0")
    circle = [(0.5 + 0.3 * math.cos(2 * math.pi * i / 36), 0.5 + 0.3 * math.sin(2 * math.pi * i / 36))
              for i in range(37)]  # fmt: skip
    draw_synthetic(page, circle)
    page.wait_for_function(
        "window.quickdraw.state.waiting.length === 0 && !window.quickdraw.state.busy"
    )
    drawing = json.loads(page.evaluate("window.quickdraw.state.latest"))
    assert len(drawing) == 1 and len(drawing[0][0]) == 37  # pointerdown + 36 moves, one stroke
    assert page.evaluate("window.quickdraw.state.guesses") > 3  # while drawing, not once after
    assert page.locator("#guesses li .name").first.text_content() == "circle"


def test_page_fetches_the_model_once_for_all_workers(session):
    page, requests = new_tab(session)
    try:
        page.wait_for_function("window.quickdraw && window.quickdraw.ready", timeout=60_000)
        assert page.evaluate("window.quickdraw.workers") >= 1
        for name in ("model.onnx", "ort-wasm-simd-threaded.wasm"):
            assert sum(u.endswith("/" + name) for u in requests) == 1, (name, requests)
    finally:
        page.close()


def test_a_second_finger_does_not_spoil_the_stroke(session):
    """Two fingers on a touch screen: the stroke is the first finger's, with none of the second's points."""
    page, _ = new_tab(session, has_touch=True)
    try:
        page.wait_for_function("window.quickdraw && window.quickdraw.ready", timeout=60_000)
        box = page.locator("#sketchpad canvas").bounding_box()
        x1, x2, y = box["x"] + 100, box["x"] + 300, box["y"] + 100
        cdp = page.context.new_cdp_session(page)

        def touch(kind: str, *points: tuple[float, float, int]) -> None:
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                {"x": px, "y": py, "id": i} for px, py, i in points]})  # fmt: skip

        touch("touchStart", (x1, y, 1))
        touch("touchStart", (x1, y, 1), (x2, y, 2))
        for i in range(1, 21):
            touch("touchMove", (x1, y + 5 * i, 1), (x2 + 3 * i, y, 2))
        touch("touchEnd")  # both lift
        page.wait_for_function(
            "window.quickdraw.state.waiting.length === 0 && !window.quickdraw.state.busy"
        )
        (stroke,) = json.loads(page.evaluate("window.quickdraw.state.latest"))
        left = box["x"]
        assert len(stroke[0]) == 21  # the first finger's down and its 20 moves
        assert set(stroke[0]) == {round(x1 - left, 1)}  # no point of the second finger
    finally:
        page.close()


def test_a_page_that_cannot_load_says_why(session, page_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(page_dir, broken)
    (broken / "model.onnx").write_bytes((page_dir / "model.onnx").read_bytes()[:1000])
    with serve(broken) as url:
        page, _ = new_tab(session, url)
        try:
            page.wait_for_function(
                "document.querySelector('#status').textContent.includes('could not')"
            )
            assert "model.onnx" in page.locator("#status").text_content()
        finally:
            page.close()


def test_the_credit_line_follows_the_training_datas_origin(session, page_dir, tmp_path):
    """The demo model learnt generated doodles: its page must not claim Quick, Draw! data; a model
    trained on Google's data credits it (CC BY 4.0); an older model.json without the record says so."""
    assert json.loads((page_dir / "model.json").read_text())["data"] == {"origin": "generated"}
    about = session.page.locator("#about").text_content()
    assert "generated doodles, not on Quick, Draw! data" in about and "CC BY" not in about
    for origin, expected in (("quickdraw", "Trained on Quick, Draw! data (Google, CC BY 4.0)."),
                             ("mixed", "(Google, CC BY 4.0) and the project's generated doodles"),
                             ("constructor", 'origin, "constructor", is not one this page knows'),
                             (None, "training data is not recorded")):  # fmt: skip
        folder = tmp_path / str(origin)
        shutil.copytree(page_dir, folder)
        meta = json.loads((folder / "model.json").read_text())
        if origin:
            meta["data"]["origin"] = origin
        else:
            del meta["data"]
        (folder / "model.json").write_text(json.dumps(meta))
        with serve(folder) as url:
            page, _ = new_tab(session, url)
            try:
                page.wait_for_function("window.quickdraw && window.quickdraw.ready", timeout=60_000)
                assert expected in page.locator("#about").text_content()
            finally:
                page.close()


def test_page_refuses_drawings_over_the_demos_limits(session, demo_checkpoint):
    """The page refuses what the server refuses (quickdraw.serving.guesser.Limits): too many strokes or points."""
    guesser = Guesser(load_model(demo_checkpoint))
    limits = guesser.limits
    many = [[[i, i + 1], [0, 1], [0, 1]] for i in range(limits.max_strokes + 1)]
    long = [[list(range(limits.max_points + 1)), [0] * (limits.max_points + 1)]]
    for drawing, message in (
        (many, f"{len(many)} strokes"),
        (long, f"more than {limits.max_points} points"),
    ):
        with pytest.raises(InputRejected, match=message):
            guesser.guess_strokes(drawing)
        got = session.page.evaluate(
            "(d) => { try { window.quickdraw.preprocess(d); return null } catch (e) { return e.message } }",
            drawing,
        )
        assert got is not None and message in got


# -- the game: history, announcement, "what are you drawing?", the classes (as the demo) ------------
CASES_JS = """async (cases) => {
  const out = [];
  for (const c of cases) {
    const h = new window.quickdraw.GuessHistory(c.threshold), said = [], drawing = [];
    for (let k = 0; k < c.steps.length; k++) {
      drawing.push([[k], [k], [100 * k]]);
      await h.update(drawing.slice(), async (counts) => counts.map((n) => c.steps[n - 1]));
      said.push(h.announcedStep ? h.announcedStep.word : null);
    }
    out.push(said);
  }
  return out;
}"""


def test_the_page_announces_by_the_demos_rule(session):
    # The cases of the demo's Python rule (tests/serving/test_guessing.py), run by history.js.
    got = session.page.evaluate(CASES_JS, ANNOUNCEMENT_CASES)
    assert got == [case["announced"] for case in ANNOUNCEMENT_CASES]


def test_the_page_follows_the_drawing_stroke_by_stroke(session, demo_checkpoint):
    """History, announcement and "what are you drawing?" after each stroke equal the demo's own
    (Python) on the drawing the page recorded, through a top guess that changes after it was
    announced; undo drops the last step."""
    page = session.page
    guesser = Guesser(load_model(demo_checkpoint))
    box = page.locator("#sketchpad canvas").bounding_box()
    strokes, threshold = changing_drawing(guesser, box["width"], box["height"])
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("window.quickdraw.history.steps.length === 0")
    page.evaluate("(t) => { window.quickdraw.history.threshold = t }", threshold)
    page.locator("#target").fill("square")
    shown = []
    for k, stroke in enumerate(strokes, start=1):
        draw(page, stroke)
        page.wait_for_function(
            f"window.quickdraw.history.steps.length === {k} && "
            f"document.querySelectorAll('#history tbody tr').length === {k}"
        )
        page.wait_for_function(IDLE)
        shown.append(page.locator("#announce").text_content())
    drawing = json.loads(page.evaluate("window.quickdraw.state.latest"))
    assert len(drawing) == len(strokes)
    steps = page.evaluate("window.quickdraw.history.steps.map((s) => [s.word, s.probability])")
    expected = top_words(guesser, drawing)
    assert [w for w, _ in steps] == [w for w, _ in expected]
    assert [p for _, p in steps] == pytest.approx([p for _, p in expected], abs=1e-4)
    assert shown == said_after_each_stroke(guesser, drawing, threshold)
    assert len(set(shown)) > 1, f"the top guess did not change while drawing: {shown}"
    history = GuessHistory(threshold)
    history.update(drawing, lambda counts: guesser.top_of_prefixes(drawing, counts))
    assert page.locator("#got").text_content() == history.target_status("square", guesser.classes)
    page.locator("#target").fill("dragon")
    assert "not one of the model's 4 classes" in page.locator("#got").text_content()
    page.get_by_role("button", name="Undo").click()
    page.wait_for_function(
        f"document.querySelectorAll('#history tbody tr').length === {len(strokes) - 1}"
    )
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("document.querySelectorAll('#history tbody tr').length === 0")
    assert page.locator("#announce").text_content() == ""


def test_the_page_lists_the_classes_and_frames_the_models_input(session):
    page = session.page
    assert (
        page.locator("#classes summary").text_content().startswith("The 4 things this model knows")
    )
    assert page.locator("#classes p").text_content() == ", ".join(sorted(CLASSES))
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.querySelector('#model-input canvas'));"
        " return [s.borderTopWidth, s.borderTopColor, getComputedStyle(document.body).backgroundColor]; })()"
    )
    width, colour, background = style
    # Ink is white on black: a frame that is neither keeps ink on the input's edge visible.
    assert float(width.removesuffix("px")) >= 2 and colour not in (background, "rgb(255, 255, 255)")


CIRCLE_DRAWING = raw([ring()], 400, 400)


def test_an_int8_page_ships_the_int8_model_only(session, demo_checkpoint, tmp_path):
    folder = run_export(tmp_path / "int8", f"ckpt_path={demo_checkpoint}", "format=web",
                        "quantize=int8", "quantization.mode=dynamic", "web.model=int8")  # fmt: skip
    assert (folder / "model.int8.onnx").is_file() and not (folder / "model.onnx").exists()
    assert json.loads((folder / "model.json").read_text())["files"] == {"int8": "model.int8.onnx"}
    (out,), requests = run_in_tab(session, folder, [CIRCLE_DRAWING])
    assert abs(sum(out["probs"]) - 1) < 1e-3
    assert not [r for r in requests if r.endswith("model.onnx")]
