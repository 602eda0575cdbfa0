"""Guessing while drawing, as the demo shows it: the guess history of one drawing, the game-style
acceptance rule, and when the model got the word the person meant. Pure Python, no UI, no model.

A drawing is what the sketchpad sends: raw strokes `[xs, ys, ts]` (canvas px, ms since the
drawing's first point). The history has one `Step` per stroke: the top guess for the
drawing as it was when that stroke ended (its first k strokes, simplified on their own, as the
page saw it then). Steps are cached by a fingerprint of their prefix, so a new stroke costs one
guess, undo drops the steps after it and clearing empties the history: the history is always
exactly the one of the drawing on the canvas, whichever events the page skipped.

Acceptance rule (as `early/accept_threshold` in prefix evaluation): a guess is accepted when
its probability is at least `threshold`; `None` turns announcements off. The announcement is
the latest accepted step: once said, it stays while later strokes are not confident enough, and it
follows the top guess when another word is accepted (a square that becomes a house 100 % is
announced as a house). The exported page does the same in JavaScript
(`quickdraw/deploy/page/history.js`); both are tested on the same cases
(`tests/helpers/guessing_cases.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from quickdraw.data.labels import word_key

# (prefix stroke counts) -> (top word, its probability) for each: the model, seen from here.
GuessPrefixes = Callable[[list[int]], list[tuple[str, float]]]


@dataclass(frozen=True)
class Step:
    strokes: int  # strokes drawn so far
    seconds: float | None  # when the last of them ended, s since the first point (None: no times)
    word: str  # the top guess
    probability: float


def accepted(probability: float, threshold: float | None) -> bool:
    """The game's rule: confident enough to say it out loud (never, with `threshold` None)."""
    return threshold is not None and probability >= threshold


def announcement(word: str) -> str:
    """`I know — it's a cat!` (an apple, the Eiffel Tower)."""
    if word.lower().startswith("the "):
        return f"I know — it's {word}!"
    return f"I know — it's {'an' if word[:1].lower() in 'aeiou' else 'a'} {word}!"


@dataclass
class GuessHistory:
    """The top guess after each stroke of the drawing on the canvas (`update` keeps it so)."""

    threshold: float | None = 0.9  # the demo's default (quickdraw/conf/demo.yaml says why)
    steps: list[Step] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # fingerprint of each step's prefix

    def update(self, drawing: Sequence, guess: GuessPrefixes) -> None:
        """Bring the history to `drawing` (a list of raw strokes), asking `guess` only for the
        prefixes not seen before; an empty drawing empties it."""
        keys = _prefix_keys(drawing)
        same = 0
        while same < min(len(keys), len(self.keys)) and keys[same] == self.keys[same]:
            same += 1
        del self.steps[same:], self.keys[same:]
        todo = list(range(same + 1, len(keys) + 1))
        if not todo:
            return
        for k, (word, p) in zip(todo, guess(todo), strict=True):
            self.steps.append(Step(k, _end_seconds(drawing[k - 1]), word, float(p)))
        self.keys = keys

    @property
    def announced_step(self) -> Step | None:
        """The step announced now: the latest one whose guess met the acceptance rule."""
        return next(
            (s for s in reversed(self.steps) if accepted(s.probability, self.threshold)), None
        )

    def recognised(self, target: str) -> Step | None:
        """The first step at which the model got `target`: its top guess, accepted (or, with
        announcements off, simply its top guess)."""
        want = word_key(target)
        for s in self.steps:
            if word_key(s.word) == want and (
                self.threshold is None or accepted(s.probability, self.threshold)
            ):
                return s
        return None

    def target_status(self, target: str | None, classes: Sequence[str]) -> str:
        """What the page says about the optional "what are you drawing?" answer."""
        target = (target or "").strip()
        if not target:
            return ""
        if word_key(target) not in {word_key(c) for c in classes}:
            return f"“{target}” is not one of the model's {len(classes)} classes."
        step = self.recognised(target)
        if step is None:
            return f"Not got “{target}” yet." if self.steps else ""
        when = f" and {step.seconds:.1f} s" if step.seconds is not None else ""
        plural = "s" if step.strokes != 1 else ""
        return f"Got “{step.word}” after {step.strokes} stroke{plural}{when}."

    def markdown(self) -> str:
        """The history as a Markdown table, newest stroke last."""
        if not self.steps:
            return "*The top guess after each stroke appears here.*"
        rows = [
            f"| {s.strokes} | {'' if s.seconds is None else f'{s.seconds:.1f}'} | {s.word} | "
            f"{s.probability:.0%}{' ✓' if accepted(s.probability, self.threshold) else ''} |"
            for s in self.steps
        ]
        return "| stroke | s | top guess | probability |\n|---:|---:|---|---:|\n" + "\n".join(rows)


def _prefix_keys(drawing: Sequence) -> list[str]:
    """One fingerprint per prefix: the k-th depends on strokes 1..k, so an edit changes all after it."""
    keys, h = [], hashlib.blake2b(digest_size=16)
    for stroke in drawing:
        h.update(orjson.dumps(stroke, option=orjson.OPT_SERIALIZE_NUMPY))
        keys.append(h.copy().hexdigest())
    return keys


def _end_seconds(stroke: Sequence) -> float | None:
    ts = stroke[2] if len(stroke) > 2 else None
    return max(ts) / 1000 if ts else None
