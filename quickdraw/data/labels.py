"""Class names as people and files spell them: one key per class, label files, and label matching.

Kaggle's files (and `predict`'s output) write spaces as underscores, people change case and leave
spaces around words: [`word_key`][quickdraw.data.labels.word_key] is the one spelling-free form that evaluation, balancing and
the demo's guessing game compare class names by.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from quickdraw.core.errors import InputError
from quickdraw.data.readers import open_text_file
from quickdraw.data.text import excerpt


def word_key(word: str) -> str:
    """The spelling-free form of a class name: `The_Eiffel_Tower`, ` the eiffel tower` -> `the eiffel tower`.

    Kaggle's files (and `predict`'s output) write spaces as underscores; people change case
    and leave spaces around words. No two Quick, Draw! classes differ only in these.
    """
    return " ".join(word.replace("_", " ").split()).casefold()


class LabelMatcher:
    """Maps labels in any accepted spelling to class ids and remembers those that name no class."""

    def __init__(self, classes: list[str]):
        self.index = {word_key(c): i for i, c in enumerate(classes)}
        self.unmatched: Counter = Counter()
        self.matched = 0

    def __call__(self, word: str | None) -> int | None:
        """The class id of `word`; None for a missing label, or (counted) a word naming no class."""
        if word is None:
            return None
        c = self.index.get(word_key(word))
        if c is None:
            self.unmatched[word] += 1
        else:
            self.matched += 1
        return c

    def report(self) -> dict:
        """`{"count": N, "first": [words...]}` for the labels that matched no class."""
        return {"count": sum(self.unmatched.values()), "first": list(self.unmatched)[:5]}


def load_labels(path: str | Path) -> dict[int, str]:
    """`key_id,word` (Kaggle's test_labels.csv layout) into a dict.

    A key_id listed again with the same word (in any spelling [`word_key`][quickdraw.data.labels.word_key] accepts) is kept
    once; with another word it is a ValueError naming the key_id, both words and their lines:
    which one is right cannot be guessed, and letting the last one win changes every metric.
    """
    with open_text_file(path, setting="labels") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"key_id", "word"} <= {
            h.strip() for h in reader.fieldnames
        }:
            raise InputError(
                f"{path}: expected columns key_id,word, found {excerpt(reader.fieldnames)}"
            )
        reader.fieldnames = [h.strip() for h in reader.fieldnames]
        labels: dict[int, str] = {}
        lines: dict[int, int] = {}
        for r in reader:
            try:
                key = int(r["key_id"])
            except (TypeError, ValueError):
                raise InputError(
                    f"{path} line {reader.line_num}: key_id {excerpt(r['key_id'], 40)} is not an integer"
                ) from None
            if key in labels and _label_key(labels[key]) != _label_key(r["word"]):
                raise InputError(
                    f"{path}: key_id {key} has two labels, {excerpt(labels[key], 60)} on line "
                    f"{lines[key]} and {excerpt(r['word'], 60)} on line {reader.line_num}; "
                    "a drawing has one label: remove the wrong line"
                )
            labels.setdefault(key, r["word"])
            lines.setdefault(key, reader.line_num)
        return labels


def _label_key(word: str | None) -> str | None:
    return word_key(word) if word else None
