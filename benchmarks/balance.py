"""Time test-set balancing (quickdraw.metrics.balancing.balance) and print its top-1 count spread.

    python -m benchmarks.balance [--sizes 1720x344,112199x340 --kinds random,weak]

Two kinds of (N, C) probability matrix at each size (the sample's test set, Kaggle's test set):
`random`, rows drawn from a flat Dirichlet; `weak`, a peaked synthetic classifier that sends
most rows to a few classes (every class equally common in truth, a strong per-class bias, logits
scaled x3, about a fortieth of rows right at top-1). Prints the seconds taken, the top-1 counts per
class before and after against the target, and the top-1 accuracy before and after.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from quickdraw.metrics.balancing import balance, target_counts


def matrix(kind: str, n: int, c: int, rng: np.random.Generator) -> np.ndarray:
    """(n, c) float32 probabilities; the true class of row i is `i % c`."""
    if kind == "random":
        return rng.dirichlet(np.ones(c), n).astype(np.float32)
    logits = rng.normal(0, 1, (n, c)).astype(np.float32) + 3 * rng.normal(0, 1, c).astype(
        np.float32
    )
    logits[np.arange(n), np.arange(n) % c] += 2.5
    logits *= 3
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits, out=logits)
    return probs / probs.sum(axis=1, keepdims=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="1720x344,112199x340", help="NxC, comma-separated")
    p.add_argument("--kinds", default="random,weak")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for size in args.sizes.split(","):
        n, c = (int(v) for v in size.split("x"))
        for kind in args.kinds.split(","):
            probs = matrix(kind, n, c, np.random.default_rng(args.seed))
            labels = np.arange(n) % c
            t0 = time.perf_counter()
            scores = balance(probs)
            seconds = time.perf_counter() - t0
            target = target_counts(n, np.ones(c))
            before = np.bincount(probs.argmax(1), minlength=c)
            after = np.bincount(scores.argmax(1), minlength=c)
            print(
                f"{n} x {c} {kind}: balanced in {seconds:.1f} s; top-1 counts per class "
                f"{before.min()}-{before.max()} before, {after.min()}-{after.max()} after "
                f"(target {target.min()}-{target.max()}, all equal: {(after == target).all()}); "
                f"top-1 accuracy {(probs.argmax(1) == labels).mean():.3f} -> "
                f"{(scores.argmax(1) == labels).mean():.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
