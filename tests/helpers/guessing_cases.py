"""Cases of the announcement rule, shared by the demo's Python test and the page's browser test.

Each case: the top guess after each stroke `(word, probability)`, the threshold, and the word
announced after each stroke (None: nothing said yet). The rule: the latest accepted step.
"""

from __future__ import annotations

ANNOUNCEMENT_CASES = [
    {  # the report: a square, then a house at 100 %: the announcement follows the house
        "steps": [["square", 0.3], ["square", 0.6], ["house", 0.45], ["house", 1.0]],
        "threshold": 0.5,
        "announced": [None, "square", "square", "house"],
    },
    {  # a later unsure stroke does not take back what was said
        "steps": [["cat", 0.7], ["dog", 0.2], ["cat", 0.49]],
        "threshold": 0.5,
        "announced": ["cat", "cat", "cat"],
    },
    {  # exactly the threshold is accepted; back to the first word when it is accepted again
        "steps": [["apple", 0.5], ["circle", 0.8], ["apple", 0.9]],
        "threshold": 0.5,
        "announced": ["apple", "circle", "apple"],
    },
    {  # announcements off
        "steps": [["cat", 1.0], ["dog", 1.0]],
        "threshold": None,
        "announced": [None, None],
    },
    {  # a high threshold: nothing reaches it
        "steps": [["cat", 0.8], ["cat", 0.89]],
        "threshold": 0.9,
        "announced": [None, None],
    },
]
