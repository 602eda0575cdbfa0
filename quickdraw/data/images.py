"""Photos and scans of doodles into strokes: the pen's centre lines, traced as polylines.

An image has no strokes, so [`image_to_strokes`][quickdraw.data.images.image_to_strokes] recovers the pen's path: binarise against
the local paper brightness (shading cancels out), drop specks, crop to the ink, scale the longer
side to 256 px (the Quick, Draw! frame), thin the ink to one-pixel centre lines (Zhang-Suen, on
the core of thick lines: [`centre_lines`][quickdraw.data.images.centre_lines]), walk those lines into polylines and straighten
them ([`straighten`][quickdraw.data.images.straighten]: corners and line ends put back where thinning rounded them off). From
there an image is a drawing like any other (Google's simplification, then the model's
rasteriser); its unknown stroke order and timing are handled by
[`quickdraw.data.raster.rasterize_untimed`][quickdraw.data.raster.rasterize_untimed].
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from quickdraw.data.image_decode import MIN_CONTRAST, ImageError, read_frames

FRAME = 256  # images are traced at the resolution of the Quick, Draw! frame (0-255)


def load_gray(image: np.ndarray | Image.Image | str | Path, max_pixels: int) -> np.ndarray:
    """Grey uint8 (H, W) of a file, PIL image or array of any mode ([`quickdraw.data.image_decode`][quickdraw.data.image_decode]).

    Of an animation or a multi-page file, the frame that holds a drawing; frames that are all
    blank give the first (the caller then finds no ink). Raises [`ImageError`][quickdraw.data.image_decode.ImageError] when it cannot
    be decoded, is over `max_pixels`, or holds several different drawings (which to guess?).
    """
    frames, count = read_frames(image, max_pixels)
    if count == 1:
        return frames[0]
    # identical frames (a still saved as an animation, a repeated page) are one drawing
    drawn = {_digest(f): f for f in frames if frame_mask(f) is not None}
    if len(drawn) == 1:
        return next(iter(drawn.values()))
    if len(drawn) > 1:
        raise ImageError(
            f"That image has {count} frames and {len(drawn)} of them hold different drawings; "
            "save the one to guess as a still image (PNG or JPEG)."
        )
    if len(frames) < count:
        raise ImageError(
            f"That image has {count} frames; the first {len(frames)} (all that fit the limit of "
            f"{max_pixels / 1e6:g} megapixels) hold no drawing. Save the frame with the drawing "
            "as a still image (PNG or JPEG)."
        )
    return frames[0]


def _digest(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(frame.tobytes(), digest_size=16).digest()


def image_to_strokes(gray: np.ndarray, work: int = 1024) -> list[np.ndarray] | None:
    """The ink's centre lines as polylines of (x, y) pixels (longer side ~256); None without ink.

    `work`: larger images are first shrunk to this longer side (a doodle needs no more).
    """
    mask = frame_mask(gray, work)
    if mask is None:
        return None
    skeleton = centre_lines(mask)
    strokes = straighten(mask, skeleton, trace(skeleton))
    return strokes or None


def frame_mask(gray: np.ndarray, work: int = 1024) -> np.ndarray | None:
    """The ink of `gray` as a boolean mask, cropped and scaled to the 256 px frame; None without ink."""
    h, w = gray.shape
    if max(h, w) > work:
        f = work / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if np.median(gray) < 128:  # light ink on a dark background: make the ink dark
        gray = 255 - gray
    # How much darker each pixel is than the paper around it: shading across a photo cancels out.
    ink = cv2.subtract(paper_brightness(gray), gray)
    if int(ink.max()) < MIN_CONTRAST:
        return None
    _, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    mask[ink < MIN_CONTRAST // 2] = 0
    mask = _drop_specks(mask)
    if not mask.any():
        return None
    x, y, bw, bh = cv2.boundingRect(mask)
    crop, side = mask[y : y + bh, x : x + bw], max(bw, bh)
    if side > FRAME:  # shrinking: widen lines first so the thinnest still cover their pixels
        f = int(np.ceil(side / FRAME))
        crop = cv2.dilate(crop, np.ones((f, f), np.uint8))
    scale = FRAME / side
    size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(crop, size, interpolation=interp) >= 128


# Ink this close to the pen's edge (px at 256) is kept when thinning the core of a thick line.
_CORE_MARGIN = 2.0


def centre_lines(mask: np.ndarray) -> np.ndarray:
    """One-pixel centre lines of ink `mask`, reaching further into the corners of thick pens.

    Thinning peels a line from all sides at once, so it cuts every corner and line end by up to
    the pen's radius; at 64 px a 2 px shift of one corner already costs ~0.15 IoU. Thinning only
    the ink's core (pixels deeper than the pen's radius less `_CORE_MARGIN`) leaves far less to
    peel. The core is joined to the plain skeleton, so a line drawn thinner than the typical pen
    keeps its skeleton instead of breaking.
    """
    skeleton = thin(mask)
    depth = _depth(mask)
    radius = pen_radius(depth, skeleton)
    if radius <= _CORE_MARGIN:  # thin pens: the skeleton is already the centre line
        return skeleton
    core = (depth >= radius - _CORE_MARGIN).astype(np.uint8)
    # only core pieces the skeleton passes through: an isolated blob would become a new stroke
    n, labels = cv2.connectedComponents(core, connectivity=8)
    on_line = np.zeros(n, bool)
    on_line[np.unique(labels[skeleton])] = True
    on_line[0] = False
    return thin(on_line[labels] | skeleton)


def _depth(mask: np.ndarray) -> np.ndarray:
    """Each ink pixel's distance to the nearest paper pixel (the image border counts as paper)."""
    return cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]


def pen_radius(depth: np.ndarray, skeleton: np.ndarray) -> float:
    """The typical pen radius (px): the ink's depth along its centre lines, half the pen's width."""
    return float(np.median(depth[skeleton])) if skeleton.any() else 0.0


# The widest pen the paper estimate sees through, as a fraction of the image's longer side.
MAX_PEN = 0.12
_PAPER_SIDE = 160  # the paper is estimated on a copy this size: light varies slowly, and it is fast


def paper_brightness(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness under every pixel (H, W) uint8, as if the ink were not there.

    A grey-level closing (dilate, then median) with a disc wider than the widest pen
    (`MAX_PEN` of the longer side) replaces every stroke by the paper around it; a smaller
    disc leaves the middle of a thick stroke dark, so only its edges would count as ink and
    thinning would trace both edges instead of the pen's centre line. Done on a small copy:
    uneven light changes over far more than a pen width.
    """
    h, w = gray.shape
    f = min(1.0, _PAPER_SIDE / max(h, w))
    small = cv2.resize(
        gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
    )
    k = max(3, int(MAX_PEN * max(small.shape)) | 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    paper = cv2.medianBlur(cv2.dilate(small, disc), k)
    return cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR) if f < 1 else paper


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Remove connected blobs far smaller than the drawing (dust, JPEG noise); dots of ink stay."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= max(3, 0.002 * areas.sum())])
    return np.where(keep[labels], np.uint8(255), np.uint8(0))


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to one-pixel-wide, 8-connected centre lines."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            # neighbours clockwise from north: P2 .. P9
            p = [
                img[:-2, 1:-1],
                img[:-2, 2:],
                img[1:-1, 2:],
                img[2:, 2:],
                img[2:, 1:-1],
                img[2:, :-2],
                img[1:-1, :-2],
                img[:-2, :-2],
            ]
            count = sum(q.astype(np.int8) for q in p)
            transitions = sum(
                ((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int8) for i in range(8)
            )
            if step == 0:
                side = (p[0] & p[2] & p[4]) | (p[2] & p[4] & p[6])
            else:
                side = (p[0] & p[2] & p[6]) | (p[0] & p[4] & p[6])
            remove = (c == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & (side == 0)
            if remove.any():
                c[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


# Straight neighbours before diagonal ones: walks then follow staircases instead of cutting them.
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))


def trace(skeleton: np.ndarray) -> list[np.ndarray]:
    """Walk one-pixel-wide lines into (N, 2) x, y polylines, from line ends in reading order.

    A walk that starts next to an already traced pixel begins there, so branches stay joined
    at junctions; a walk that comes back to its start closes the loop (circles stay closed).
    """
    ys, xs = np.nonzero(skeleton)
    pixels = set(zip(xs.tolist(), ys.tolist(), strict=True))

    def around(p: tuple[int, int]) -> list[tuple[int, int]]:
        return [q for dx, dy in _STEPS if (q := (p[0] + dx, p[1] + dy)) in pixels]

    ends_first = sorted(pixels, key=lambda p: (len(around(p)) != 1, p[1], p[0]))
    seen: set[tuple[int, int]] = set()
    strokes = []
    for start in ends_first:
        if start in seen:
            continue
        seen.add(start)
        path = [q for q in around(start) if q in seen][:1] + [start]
        cur = start
        while (nxt := next((q for q in around(cur) if q not in seen), None)) is not None:
            seen.add(nxt)
            path.append(nxt)
            cur = nxt
        if len(path) > 3 and path[0] in around(cur):
            path.append(path[0])
        strokes.append(np.array(path, np.float64))
    return strokes


# Straightening, in multiples of the pen radius r (floors in px hold for pens of 1-2 px).
_TRIM = 2.0  # skeleton within 2r (>= 2 px) of a vertex is bent by thinning: not used to fit lines
_NEAR = 3.0  # a vertex meets every line that ends within 3r (>= 4 px) of it
_MOVE = 2.0  # ... and moves at most 2r (>= 2 px); further means the lines do not meet there
_DAMP = 0.05  # lines turning less than ~13 degrees barely move a vertex (curves stay curves)


def straighten(
    mask: np.ndarray, skeleton: np.ndarray, strokes: list[np.ndarray]
) -> list[np.ndarray]:
    """Traced pixel paths as polylines whose corners and free ends lie where the pen turned and stopped.

    Thinning peels a line from all sides, so it rounds each corner by up to the pen's radius,
    leaves the ends a radius short and breaks junctions into stubs; at 64 px a 2 px shift of the
    roof's apex already costs ~0.15 IoU, because Google's simplification rescales the whole
    drawing to its extent. So, with r the pen radius from the distance transform:

    1. each path is cut into straight runs (Ramer-Douglas-Peucker, `cv2.approxPolyDP`);
    2. each run gets a line (`cv2.fitLine`) through its skeleton away from the bent ends,
       then moved onto the middle of its band of ink (sub-pixel; a skeleton pixel is up to half
       a pixel off the middle of an even-width line);
    3. each vertex moves to the point nearest all lines that end near it (damped least squares):
       the corner the pen made, the same point for every stub of a broken junction;
    4. a free end is put a pen radius short of the ink's tip along its run (a round pen's end
       lies one radius inside its mark).

    Measured on a house drawn with pens of 1-10 % of the image (`python -m benchmarks.images`):
    model-input IoU against a thin pen rose from 0.70-0.97 to 0.93-1.00. Fitting the strokes,
    drawn at the pen's width, to the ink instead (moving vertices to minimise the mismatch)
    was worse (0.36-0.72) and slower: thin pens have too few pixels to fit.
    """
    if not strokes:
        return []
    depth = _depth(mask)
    r = pen_radius(depth, skeleton)
    cuts = [_corners(path, float(np.clip(r / 2, 1.0, 2.0))) for path in strokes]
    ink = np.argwhere(mask)[:, ::-1].astype(np.float64)
    runs = [
        (path[a], path[b], _centre_line(path[a : b + 1], ink, r))
        for path, ix in zip(strokes, cuts, strict=True)
        for a, b in itertools.pairwise(ix)
    ]
    ends = np.array([[*a, *b] for a, b, _ in runs], np.float64).reshape(-1, 4)
    around = cv2.filter2D(
        skeleton.astype(np.uint8), -1, np.ones((3, 3)), borderType=cv2.BORDER_CONSTANT
    )
    tips = skeleton & (around == 2)  # a pixel and one neighbour: where a line stops
    out = []
    for path, ix in zip(strokes, cuts, strict=True):
        pts = [_meet(path[i], runs, ends, depth, r) for i in ix]
        for k, inner in ((0, 1), (-1, -2)):
            x, y = path[ix[k]].astype(int)
            if len(ix) > 1 and tips[y, x]:
                end = _free_end(mask, path[ix[k]], pts[inner], r)
                # a free end the lines did not move is a line's end; one they moved to a corner
                # is a stub of it, unless the ink reaches on (a roof's eave past the wall)
                snapped = np.hypot(*(pts[k] - path[ix[k]])) > 0.5
                pts[k] = end if not snapped or np.hypot(*(end - pts[k])) > r else pts[k]
        line = np.array(pts)
        line = line[np.r_[True, np.hypot(*np.diff(line, axis=0).T) > 0.5]]
        if len(line) > 1 or len(ix) == 1 or len(strokes) == 1:  # a stub shrunk to a point goes
            out.append(line)
    return out


def _corners(path: np.ndarray, eps: float) -> list[int]:
    """Indices of the vertices of `path` simplified by Ramer-Douglas-Peucker, both ends kept."""
    closed = len(path) > 3 and (path[0] == path[-1]).all()
    body = path[:-1] if closed else path
    approx = cv2.approxPolyDP(body.astype(np.int32).reshape(-1, 1, 2), eps, closed).reshape(-1, 2)
    where = {p: i for i, p in enumerate(map(tuple, body.astype(int).tolist()))}
    return sorted({where[tuple(p)] for p in approx.tolist()} | {0, len(path) - 1})


def _centre_line(run: np.ndarray, ink: np.ndarray, r: float) -> tuple[np.ndarray, float] | None:
    """(unit normal n, offset c) of the line n.p = c along the middle of `run`'s ink, or None when short."""
    trim = max(2.0, _TRIM * r)
    a, b = run[0], run[-1]
    keep = run[(np.hypot(*(run - a).T) > trim) & (np.hypot(*(run - b).T) > trim)]
    if len(keep) < 3:
        return None
    vx, vy, x0, y0 = cv2.fitLine(keep.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
    d, n = np.array([vx, vy], np.float64), np.array([-vy, vx], np.float64)
    c = float(n @ (x0, y0))
    t0, t1 = sorted((float(d @ a), float(d @ b)))
    along, off = ink @ d, ink @ n - c
    band = (along > t0 + trim) & (along < t1 - trim) & (np.abs(off) <= r + 1.5)
    return n, c + (float(off[band].mean()) if band.sum() > 10 else 0.0)


def _meet(p: np.ndarray, runs: list, ends: np.ndarray, depth: np.ndarray, r: float) -> np.ndarray:
    """`p` moved to the point nearest every run's line that ends near it (damped least squares).

    Only to a point on the pen's centre (nearly as deep in the ink as the pen's radius): a corner
    the pen made is, but where the lines of a curve's chords cross lies off the curve.
    """
    near = np.minimum(np.hypot(*(ends[:, :2] - p).T), np.hypot(*(ends[:, 2:] - p).T))
    lines = [runs[j][2] for j in np.flatnonzero(near <= max(4.0, _NEAR * r)) if runs[j][2]]
    p = p.astype(np.float64)
    if not lines:
        return p
    a = _DAMP * np.eye(2) + sum(np.outer(n, n) for n, _ in lines)
    q = np.linalg.solve(a, _DAMP * p + sum(n * c for n, c in lines))
    (x, y), (h, w) = np.round(q).astype(int), depth.shape
    centred = 0 <= x < w and 0 <= y < h and depth[y, x] >= min(r - 1, 0.85 * r)
    return q if centred and np.hypot(*(q - p)) <= max(2.0, _MOVE * r) else p


def _free_end(mask: np.ndarray, end: np.ndarray, inner: np.ndarray, r: float) -> np.ndarray:
    """Where a round pen stopped: a radius short of the ink's tip, going from `inner` through `end`."""
    d = end - inner
    if not np.hypot(*d):
        return end.astype(np.float64)
    d = d / np.hypot(*d)
    h, w = mask.shape
    t, reach = 0.0, 2 * r + 2  # a skeleton ends within about a radius of a round pen's tip
    while t <= reach:
        x, y = np.round(end + (t + 0.5) * d).astype(int)
        if not (0 <= x < w and 0 <= y < h and mask[y, x]):
            return end + max(0.0, t - (r - 0.5)) * d
        t += 0.5
    return end.astype(np.float64)  # ink goes on along the run: not the end of a line
