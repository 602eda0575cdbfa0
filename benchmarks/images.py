"""Uploaded images of any pen: model-input IoU against a thin pen, before and after straightening.

    python -m benchmarks.images [--sides 300,640] [--cases ../shared/cases]

The house of `quickdraw.testing.pen_images` drawn with round pens of 1-10 % of the image, in
four looks (ink and paper colours, uneven light, transparency), traced by
`quickdraw.data.images.image_to_strokes`; each model input (64 px, after Google's
simplification) is compared with a 2 px pen's, black on white. "before" is the traced skeleton
as it was (corners rounded by thinning), "after" the same paths through
`quickdraw.data.images.straighten`. Issue 17's target: >= 0.9 for pens up to 8 %. With
`--cases` present, the case file pair (`house_thick_12px.png` against `house_thin_3px.png`)
too. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT
from quickdraw.data.images import centre_lines, frame_mask, load_gray, straighten, trace
from quickdraw.testing.pen_images import LOOKS, iou, model_input, pen_drawing

SHARES = (0.01, 0.02, 0.04, 0.06, 0.08, 0.10)


def inputs(image) -> tuple[np.ndarray, np.ndarray]:
    """The model input of `image` before and after straightening the traced paths."""
    mask = frame_mask(load_gray(image, 10**8))
    skeleton = centre_lines(mask)
    paths = trace(skeleton)
    return model_input(paths), model_input(straighten(mask, skeleton, paths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sides", default="300,640", help="image sides in px, comma-separated")
    parser.add_argument("--cases", type=Path, default=ROOT.parent / "shared" / "cases")
    args = parser.parse_args()
    print("| side | pen | " + " | ".join(LOOKS) + " | worst |")
    print("|---|---|" + "---|" * (len(LOOKS) + 1))
    worst = {}
    for side in map(int, args.sides.split(",")):
        ref = inputs(pen_drawing(side, 2, LOOKS["black on white"]))
        for share in SHARES:
            got = [inputs(pen_drawing(side, share * side, look)) for look in LOOKS.values()]
            cells = [[iou(r, g) for r, g in zip(ref, pair, strict=True)] for pair in got]
            low = [min(c[i] for c in cells) for i in (0, 1)]
            worst[share] = [min(w, v) for w, v in zip(worst.get(share, (1, 1)), low, strict=True)]
            text = " | ".join(f"{b:.2f} -> {a:.2f}" for b, a in cells)
            print(f"| {side} | {share:.0%} | {text} | {low[0]:.2f} -> {low[1]:.2f} |")
    print("\nworst over sides and looks, before -> after:")
    for share, (b, a) in worst.items():
        print(f"  {share:4.0%} pen: {b:.2f} -> {a:.2f}")
    thin, thick = args.cases / "house_thin_3px.png", args.cases / "house_thick_12px.png"
    if thin.exists() and thick.exists():
        pair = [iou(t, k) for t, k in zip(inputs(thin), inputs(thick), strict=True)]
        print(f"case house_thick_12px vs house_thin_3px: {pair[0]:.2f} -> {pair[1]:.2f}")


if __name__ == "__main__":
    main()
