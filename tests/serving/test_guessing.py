"""The demo's guess history, acceptance rule and "got it after": pure logic with a stand-in model."""

from __future__ import annotations

from quickdraw.serving.guessing import GuessHistory, announcement
from tests.helpers.guessing_cases import ANNOUNCEMENT_CASES

CLASSES = ["cat", "circle", "The Eiffel Tower", "apple"]


def stroke(t0: int, t1: int) -> list:
    return [[0, 10], [0, 10], [t0, t1]]


class Model:
    """Top guess per prefix length from a script; remembers what it was asked."""

    def __init__(self, script: dict[int, tuple[str, float]]):
        self.script, self.asked = script, []

    def __call__(self, counts: list[int]) -> list[tuple[str, float]]:
        self.asked.append(counts)
        return [self.script[k] for k in counts]


def test_history_grows_by_stroke_and_asks_only_for_new_prefixes():
    model = Model({1: ("circle", 0.3), 2: ("cat", 0.4), 3: ("cat", 0.7)})
    h = GuessHistory(threshold=0.5)
    drawing = [stroke(0, 800), stroke(1500, 2400), stroke(3000, 4200)]
    for k in (1, 2, 3):
        h.update(drawing[:k], model)
        assert [s.strokes for s in h.steps] == list(range(1, k + 1))
    assert model.asked == [[1], [2], [3]]
    assert [(s.word, s.seconds) for s in h.steps] == [("circle", 0.8), ("cat", 2.4), ("cat", 4.2)]
    assert (
        h.announced_step.strokes == 3
        and announcement(h.announced_step.word) == "I know — it's a cat!"
    )
    assert "| 3 | 4.2 | cat | 70% ✓ |" in h.markdown()


def test_undo_and_edits_drop_the_steps_after_them_and_clear_empties():
    model = Model({1: ("circle", 0.3), 2: ("cat", 0.9)})
    h = GuessHistory(threshold=0.5)
    a, b, c = stroke(0, 100), stroke(200, 300), stroke(400, 500)
    h.update([a, b], model)
    h.update([a], model)  # undo
    assert len(h.steps) == 1 and h.announced_step is None and model.asked == [[1, 2]]
    h.update([a, c], model)  # a different second stroke: guessed afresh
    assert model.asked[-1] == [2] and h.steps[-1].seconds == 0.5
    h.update([], model)  # clear
    assert h.steps == [] and h.announced_step is None and "appears here" in h.markdown()
    h.update([c, a], model)  # a new drawing: every prefix is new
    assert model.asked[-1] == [1, 2]


def test_acceptance_threshold_and_off():
    model = Model({1: ("cat", 0.5)})
    assert GuessHistory(threshold=0.5).announced_step is None
    on, off = GuessHistory(threshold=0.5), GuessHistory(threshold=None)
    on.update([stroke(0, 10)], model)
    off.update([stroke(0, 10)], model)
    assert on.announced_step is not None and off.announced_step is None  # >= threshold; None: never
    assert GuessHistory(threshold=0.0).announced_step is None  # a blank canvas gets no guess


def test_what_are_you_drawing_says_after_how_many_strokes_and_seconds():
    model = Model({1: ("circle", 0.9), 2: ("cat", 0.3), 3: ("cat", 0.6)})
    h = GuessHistory(threshold=0.5)
    h.update([stroke(0, 500), stroke(900, 1900), stroke(2500, 3250)], model)
    assert h.target_status("", CLASSES) == ""
    assert h.target_status(" Cat ", CLASSES) == "Got “cat” after 3 strokes and 3.2 s."
    assert h.target_status("circle", CLASSES) == "Got “circle” after 1 stroke and 0.5 s."
    assert h.target_status("apple", CLASSES) == "Not got “apple” yet."
    assert "not one of the model's 4 classes" in h.target_status("dragon", CLASSES)
    h.threshold = None  # announcements off: the top guess alone counts
    assert h.target_status("cat", CLASSES).startswith("Got “cat” after 2 strokes")


def test_announcement_wording():
    assert announcement("apple") == "I know — it's an apple!"
    assert announcement("The Eiffel Tower") == "I know — it's The Eiffel Tower!"


def test_the_announcement_follows_the_latest_accepted_guess():
    # The same cases drive the exported page's history.js (tests/deploy/test_web_page.py).
    for case in ANNOUNCEMENT_CASES:
        script = {k: tuple(step) for k, step in enumerate(case["steps"], start=1)}
        h = GuessHistory(threshold=case["threshold"])
        drawing = [stroke(100 * k, 100 * k + 50) for k in range(len(case["steps"]))]
        said = []
        for k in range(1, len(drawing) + 1):
            h.update(drawing[:k], Model(script))
            said.append(h.announced_step.word if h.announced_step else None)
        assert said == case["announced"], case


def test_the_demo_the_page_and_evaluate_share_one_default_threshold():
    from quickdraw.deploy.onnx import WebPage
    from tests.helpers.configs import compose_config, demo_config

    demo = demo_config().accept_threshold
    assert demo == compose_config("evaluate", []).accept_threshold
    assert demo == compose_config("export", []).web.accept_threshold == WebPage().accept_threshold
    assert demo == GuessHistory().threshold
