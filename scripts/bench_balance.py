"""Time test-set balancing (quickdraw.balancing.balance) on a matrix the size of Kaggle's test set.

    python scripts/bench_balance.py [--rows 112199 --classes 340]

The matrix is a synthetic classifier's softmax: every class equally common in truth, the model
biased towards some classes (a random per-class offset), about a fifth of rows right at top-1.
Prints the seconds taken, the top-1 counts per class before and after, and the top-1 accuracy
before and after (on balanced truth, balancing should raise it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from quickdraw.balancing import balance


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=112_199)
    p.add_argument("--classes", type=int, default=340)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    n, c = args.rows, args.classes
    labels = np.arange(n) % c
    logits = rng.normal(0, 1, (n, c)).astype(np.float32) + rng.normal(0, 1, c).astype(np.float32)
    logits[np.arange(n), labels] += 2.5
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    del logits
    t0 = time.perf_counter()
    scores = balance(probs)
    seconds = time.perf_counter() - t0
    before = np.bincount(probs.argmax(1), minlength=c)
    after = np.bincount(scores.argmax(1), minlength=c)
    print(f"{n} x {c} float32 ({probs.nbytes / 1e6:.0f} MB): balanced in {seconds:.1f} s")
    print(
        f"top-1 counts per class (target {n / c:.1f}): before {before.min()}-{before.max()}, after {after.min()}-{after.max()}"
    )
    print(
        f"top-1 accuracy: before {(probs.argmax(1) == labels).mean():.3f}, after {(scores.argmax(1) == labels).mean():.3f}"
    )


if __name__ == "__main__":
    main()
