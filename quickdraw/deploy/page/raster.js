// Strokes -> the model's uint8 input, in the browser, bit for bit as the Python code does it.
//
// This file mirrors two Python modules and nothing else; change them together:
//   quickdraw/data/simplify.py  Google's simplification of raw strokes (align, scale the longer
//                               side to 255, resample every 1 px, RDP with epsilon 2, round half
//                               to even, drop repeated points), reached through
//                               quickdraw/data/readers.py:parse_drawing(drawing, "raw").
//   quickdraw/data/raster.py    the rasteriser: 0..255 frame -> size x size canvas with one scale
//                               and a border, fixed point with `shift` fraction bits, drawn by
//                               OpenCV (cv2.polylines for gray, cv2.line per segment for temporal).
// The numbers both sides use (size, channels, thickness, border, shift, temporal ramp) come from
// the export's model.json ("raster", written by quickdraw/deploy/onnx.py:raster_contract), so
// the formulas that derive them live in Python only.
//
// OpenCV's drawing is re-implemented for the case the models use: 8-connected lines
// (antialias=false) with the 16-bit internal fixed point of imgproc/src/drawing.cpp
// (ThickLine: a filled quadrilateral per segment plus filled end circles; FillConvexPoly with
// its edge walk and Line2 outline; Circle; LineIterator for thickness 1). Integer arithmetic
// is done in doubles, exact below 2^53, which the 0..255 frame never approaches.
// tests/deploy/test_web_page.py checks this file against the Python pipeline in Chromium.

const XY_SHIFT = 16;
const XY_ONE = 1 << XY_SHIFT;
const RDP_EPSILON = 2.0;
export const MAX_INK_PX = 65536; // quickdraw/data/readers.py

// C's int64 arithmetic shift and division, on doubles holding integers.
const shr = (v, bits) => Math.floor(v / 2 ** bits);
const idiv = (a, b) => Math.trunc(a / b);
// numpy.rint / OpenCV cvRound: round half to even.
export function rint(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

// -- simplification (quickdraw/data/simplify.py) --------------------------------------------------
function resample(xs, ys) {
  const n = xs.length;
  if (n < 2) return [xs, ys];
  const arc = new Float64Array(n);
  for (let i = 1; i < n; i++) {
    const dx = xs[i] - xs[i - 1];
    const dy = ys[i] - ys[i - 1];
    arc[i] = arc[i - 1] + Math.sqrt(dx * dx + dy * dy); // np.linalg.norm, then cumsum
  }
  const total = arc[n - 1];
  if (total <= 1.0) return [[xs[0], xs[n - 1]], [ys[0], ys[n - 1]]];
  const t = [];
  for (let i = 0; i < total; i++) t.push(i); // np.arange(0.0, total, 1.0)
  if (total - t[t.length - 1] > 1e-9) t.push(total);
  const ox = new Array(t.length);
  const oy = new Array(t.length);
  let j = 0;
  for (let k = 0; k < t.length; k++) {
    const v = t[k];
    // numpy.interp: the last j with arc[j] <= v; exact knots and the end return the sample itself.
    while (j < n - 1 && arc[j + 1] <= v) j++;
    if (j === n - 1 || arc[j] === v) {
      ox[k] = xs[j];
      oy[k] = ys[j];
    } else {
      const w = arc[j + 1] - arc[j];
      ox[k] = ((xs[j + 1] - xs[j]) / w) * (v - arc[j]) + xs[j];
      oy[k] = ((ys[j + 1] - ys[j]) / w) * (v - arc[j]) + ys[j];
    }
  }
  return [ox, oy];
}

function rdp(xs, ys) {
  const n = xs.length;
  if (n < 3) return [xs, ys];
  const keep = new Uint8Array(n);
  keep[0] = keep[n - 1] = 1;
  const stack = [[0, n - 1]];
  while (stack.length) {
    const [i, j] = stack.pop();
    if (j - i < 2) continue;
    const ax = xs[i], ay = ys[i];
    const abx = xs[j] - ax, aby = ys[j] - ay;
    const norm = Math.hypot(abx, aby);
    let best = -1, far = -Infinity;
    for (let m = i + 1; m < j; m++) {
      const d = norm === 0
        ? Math.sqrt((xs[m] - ax) ** 2 + (ys[m] - ay) ** 2)
        : Math.abs(abx * (ys[m] - ay) - aby * (xs[m] - ax)) / norm;
      if (d > far) { far = d; best = m; } // first maximum, as np.argmax
    }
    if (far > RDP_EPSILON) {
      keep[best] = 1;
      stack.push([i, best], [best, j]);
    }
  }
  const ox = [], oy = [];
  for (let m = 0; m < n; m++) if (keep[m]) { ox.push(xs[m]); oy.push(ys[m]); }
  return [ox, oy];
}

export class DrawingRejected extends Error {}

// A raw drawing [[xs, ys(, ts)], ...] in any units -> strokes [[xs], [ys]] of 0..255 integers.
// Throws DrawingRejected as the server does (serving.Guesser: too many strokes or points, too
// much ink); null when empty.
export function simplifyDrawing(drawing, maxPoints = 5000, maxStrokes = 200) {
  if (drawing.length > maxStrokes)
    throw new DrawingRejected(`${drawing.length} strokes; the limit is ${maxStrokes}`);
  const strokes = drawing.filter((s) => s[0].length > 0);
  let count = 0;
  for (const s of strokes) count += s[0].length;
  if (!strokes.length) return null;
  if (count > maxPoints) throw new DrawingRejected(`more than ${maxPoints} points`);
  let lox = Infinity, loy = Infinity, hix = -Infinity, hiy = -Infinity;
  for (const [xs, ys] of strokes) {
    for (let i = 0; i < xs.length; i++) {
      lox = Math.min(lox, xs[i]); hix = Math.max(hix, xs[i]);
      loy = Math.min(loy, ys[i]); hiy = Math.max(hiy, ys[i]);
    }
  }
  const extent = Math.max(hix - lox, hiy - loy);
  const scale = extent > 0 ? 255.0 / extent : 1.0;
  let ink = 0;
  for (const [xs, ys] of strokes) {
    for (let i = 1; i < xs.length; i++) ink += Math.hypot(xs[i] - xs[i - 1], ys[i] - ys[i - 1]);
  }
  if (ink * scale > MAX_INK_PX) throw new DrawingRejected(`${Math.round(ink * scale)} px of ink`);
  const out = [];
  for (const [xs, ys] of strokes) {
    let [sx, sy] = resample(xs.map((x) => (x - lox) * scale), ys.map((y) => (y - loy) * scale));
    [sx, sy] = rdp(sx, sy);
    const rx = [], ry = [];
    for (let i = 0; i < sx.length; i++) {
      const x = Math.min(255, Math.max(0, rint(sx[i])));
      const y = Math.min(255, Math.max(0, rint(sy[i])));
      if (i === 0 || x !== rx[rx.length - 1] || y !== ry[ry.length - 1]) { rx.push(x); ry.push(y); }
    }
    out.push([rx, ry]);
  }
  return out;
}

// -- OpenCV's 8-connected drawing (imgproc/src/drawing.cpp) ---------------------------------------
class Canvas {
  constructor(size, channels) {
    this.size = size;
    this.channels = channels;
    this.data = new Uint8Array(size * size * channels); // HWC, as OpenCV holds it
  }

  hline(y, x1, x2, color) {
    const c = this.channels;
    for (let x = x1; x <= x2; x++) for (let k = 0; k < c; k++) this.data[(y * this.size + x) * c + k] = color[k];
  }

  put(x, y, color) {
    if (x >= 0 && x < this.size && y >= 0 && y < this.size) this.hline(y, x, x, color);
  }
}

function clipLine(w, h, p1, p2) {
  // Cohen-Sutherland clipping to [0, w-1] x [0, h-1], as cv::clipLine; returns false when outside.
  let [x1, y1] = p1, [x2, y2] = p2;
  const right = w - 1, bottom = h - 1;
  let c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8;
  let c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8;
  if ((c1 & c2) === 0 && (c1 | c2) !== 0) {
    if (c1 & 12) {
      const a = c1 < 8 ? 0 : bottom;
      x1 += idiv((a - y1) * (x2 - x1), y2 - y1); y1 = a;
      c1 = (x1 < 0) + (x1 > right) * 2;
    }
    if (c2 & 12) {
      const a = c2 < 8 ? 0 : bottom;
      x2 += idiv((a - y2) * (x2 - x1), y2 - y1); y2 = a;
      c2 = (x2 < 0) + (x2 > right) * 2;
    }
    if ((c1 & c2) === 0 && (c1 | c2) !== 0) {
      if (c1) { const a = c1 === 1 ? 0 : right; y1 += idiv((a - x1) * (y2 - y1), x2 - x1); x1 = a; c1 = 0; }
      if (c2) { const a = c2 === 1 ? 0 : right; y2 += idiv((a - x2) * (y2 - y1), x2 - x1); x2 = a; c2 = 0; }
    }
  }
  p1[0] = x1; p1[1] = y1; p2[0] = x2; p2[1] = y2;
  return (c1 | c2) === 0;
}

function line8(img, p1, p2, color) {
  // cv::Line through cv::LineIterator (8-connected, left to right) between the pixels nearest to
  // two 16-bit fixed-point points: what OpenCV 5 draws for 1 px lines (thickness 1).
  const round = (v) => shr(v + (XY_ONE >> 1), XY_SHIFT);
  const a = [round(p1[0]), round(p1[1])], b = [round(p2[0]), round(p2[1])];
  if (!clipLine(img.size, img.size, a, b)) return;
  if (b[0] < a[0]) [a[0], a[1], b[0], b[1]] = [b[0], b[1], a[0], a[1]];
  let dx = b[0] - a[0], dy = b[1] - a[1];
  const ystep = dy < 0 ? -1 : 1;
  dy = Math.abs(dy);
  const yMajor = dy > dx;
  if (yMajor) [dx, dy] = [dy, dx];
  let err = dx - (dy + dy), x = a[0], y = a[1];
  for (let i = 0; i <= dx; i++) {
    img.put(x, y, color);
    const minor = err < 0;
    err += -(dy + dy) + (minor ? dx + dx : 0);
    if (yMajor) { y += ystep; if (minor) x += 1; } else { x += 1; if (minor) y += ystep; }
  }
}

function line2(img, p1, p2, color) {
  // cv::Line2: a 1 px line between 16-bit fixed-point end points (FillConvexPoly's outline).
  const a = [p1[0], p1[1]], b = [p2[0], p2[1]];
  if (!clipLine(img.size * XY_ONE, img.size * XY_ONE, a, b)) return;
  let dx = b[0] - a[0], dy = b[1] - a[1];
  const ax = Math.abs(dx), ay = Math.abs(dy);
  let xStep, yStep, ecount;
  if (ax > ay) {
    if (dx < 0) { dy = -dy; [a[0], b[0]] = [b[0], a[0]]; [a[1], b[1]] = [b[1], a[1]]; }
    xStep = XY_ONE;
    yStep = idiv(dy * XY_ONE, ax | 1);
    ecount = shr(b[0] - a[0], XY_SHIFT);
  } else {
    if (dy < 0) { dx = -dx; [a[0], b[0]] = [b[0], a[0]]; [a[1], b[1]] = [b[1], a[1]]; }
    xStep = idiv(dx * XY_ONE, ay | 1);
    yStep = XY_ONE;
    ecount = shr(b[1] - a[1], XY_SHIFT);
  }
  let x = a[0] + (XY_ONE >> 1), y = a[1] + (XY_ONE >> 1);
  img.put(shr(b[0] + (XY_ONE >> 1), XY_SHIFT), shr(b[1] + (XY_ONE >> 1), XY_SHIFT), color);
  if (ax > ay) {
    x = shr(x, XY_SHIFT);
    for (; ecount >= 0; ecount--, x++, y += yStep) img.put(x, shr(y, XY_SHIFT), color);
  } else {
    y = shr(y, XY_SHIFT);
    for (; ecount >= 0; ecount--, x += xStep, y++) img.put(shr(x, XY_SHIFT), y, color);
  }
}

function fillConvexPoly(img, v, color) {
  // cv::FillConvexPoly for 8-connected lines, vertices already in 16-bit fixed point.
  const n = v.length, size = img.size, delta = XY_ONE >> 1;
  let imin = 0, xmin = v[0][0], xmax = v[0][0], ymin = v[0][1], ymax = v[0][1];
  let p0 = v[n - 1];
  for (let i = 0; i < n; i++) {
    const p = v[i];
    if (p[1] < ymin) { ymin = p[1]; imin = i; }
    ymax = Math.max(ymax, p[1]); xmax = Math.max(xmax, p[0]); xmin = Math.min(xmin, p[0]);
    line2(img, p0, p, color);
    p0 = p;
  }
  xmin = shr(xmin + delta, XY_SHIFT); xmax = shr(xmax + delta, XY_SHIFT);
  ymin = shr(ymin + delta, XY_SHIFT); ymax = shr(ymax + delta, XY_SHIFT);
  if (n < 3 || xmax < 0 || ymax < 0 || xmin >= size || ymin >= size) return;
  ymax = Math.min(ymax, size - 1);
  const edge = [0, 1].map((k) => ({ idx: imin, di: k === 0 ? 1 : n - 1, x: -XY_ONE, dx: 0, ye: ymin }));
  let edges = n, y = ymin;
  do {
    for (const e of edge) {
      if (y < e.ye) continue;
      let idx0 = e.idx, idx = idx0 + e.di;
      if (idx >= n) idx -= n;
      for (; edges-- > 0;) {
        const ty = shr(v[idx][1] + delta, XY_SHIFT);
        if (ty > y) {
          const xs = v[idx0][0], xe = v[idx][0];
          e.ye = ty;
          e.dx = idiv((xe - xs) * 2 + (ty - y), 2 * (ty - y));
          e.x = xs;
          e.idx = idx;
          break;
        }
        idx0 = idx;
        idx += e.di;
        if (idx >= n) idx -= n;
      }
    }
    if (edges < 0) break;
    if (y >= 0) {
      const [l, r] = edge[0].x > edge[1].x ? [edge[1], edge[0]] : [edge[0], edge[1]];
      let x1 = shr(l.x + delta, XY_SHIFT), x2 = shr(r.x + delta, XY_SHIFT);
      if (x2 >= 0 && x1 < size) {
        x1 = Math.max(x1, 0); x2 = Math.min(x2, size - 1);
        img.hline(y, x1, x2, color);
      }
    }
    edge[0].x += edge[0].dx;
    edge[1].x += edge[1].dx;
  } while (++y <= ymax);
}

function filledCircle(img, cx, cy, radius, color) {
  // cv::Circle with fill: midpoint circle, one horizontal run per octant pair.
  const size = img.size;
  let err = 0, dx = radius, dy = 0, plus = 1, minus = (radius << 1) - 1;
  const run = (y, x1, x2) => {
    if (y < 0 || y >= size || x2 < 0 || x1 >= size) return;
    img.hline(y, Math.max(x1, 0), Math.min(x2, size - 1), color);
  };
  while (dx >= dy) {
    run(cy - dy, cx - dx, cx + dx);
    run(cy + dy, cx - dx, cx + dx);
    run(cy - dx, cx - dy, cx + dy);
    run(cy + dx, cx - dy, cx + dy);
    dy++;
    err += plus;
    plus += 2;
    const mask = err <= 0 ? 0 : -1;
    err -= minus & mask;
    dx += mask;
    minus -= mask & 2;
  }
}

function thickLine(img, p0, p1, color, thickness, flags, shift) {
  // cv::ThickLine for 8-connected lines; flags: bit 0 caps p0, bit 1 caps p1.
  const k = 2 ** (XY_SHIFT - shift);
  p0 = [p0[0] * k, p0[1] * k];
  p1 = [p1[0] * k, p1[1] * k];
  if (thickness <= 1) {
    line8(img, p0, p1, color);
    return;
  }
  const dx = (p0[0] - p1[0]) / XY_ONE, dy = (p1[1] - p0[1]) / XY_ONE;
  let r = dx * dx + dy * dy;
  const odd = thickness & 1;
  const t = thickness * 2 ** (XY_SHIFT - 1);
  if (Math.abs(r) > Number.EPSILON) {
    r = (t + odd * XY_ONE * 0.5) / Math.sqrt(r);
    const ex = rint(dy * r), ey = rint(dx * r);
    fillConvexPoly(img, [
      [p0[0] + ex, p0[1] + ey], [p0[0] - ex, p0[1] - ey],
      [p1[0] - ex, p1[1] - ey], [p1[0] + ex, p1[1] + ey],
    ], color);
  }
  const radius = shr(t + (XY_ONE >> 1), XY_SHIFT);
  for (const [bit, p] of [[1, p0], [2, p1]]) {
    if (flags & bit) filledCircle(img, shr(p[0] + (XY_ONE >> 1), XY_SHIFT), shr(p[1] + (XY_ONE >> 1), XY_SHIFT), radius, color);
  }
}

// -- quickdraw/data/raster.py ---------------------------------------------------------------------
function toFixed(v, spec) {
  // _to_fixed's lookup table for uint8 points: rint(v * scale + offset), in doubles.
  const scale = ((spec.size - 1 - 2 * spec.border) / 255) * 2 ** spec.shift;
  return rint(v * scale + spec.border * 2 ** spec.shift);
}

// Simplified strokes [[xs, ys], ...] (0..255 integers) -> Uint8Array (C, H, W), the model's input.
export function rasterize(strokes, spec) {
  if (spec.antialias) throw new Error("antialiased rasters are not supported in the page");
  const img = new Canvas(spec.size, spec.channels);
  const fixed = strokes.map(([xs, ys]) => xs.map((x, i) => [toFixed(x, spec), toFixed(ys[i], spec)]));
  if (spec.encoding === "gray") {
    for (const pts of fixed) {
      const v = pts.length === 1 ? [pts[0], pts[0]] : pts; // _double_dots
      for (let i = 1; i < v.length; i++) thickLine(img, v[i - 1], v[i], [255], spec.thickness, i === 1 ? 3 : 2, spec.shift);
    }
  } else {
    const [first, last] = spec.ramp;
    const nStrokes = Math.max(fixed.length - 1, 1);
    const nSteps = Math.max(fixed.reduce((a, p) => a + p.length, 0) - 1, 1);
    let start = 0; // index of the stroke's first point in the drawing
    fixed.forEach((pts, s) => {
      const order = rint(first - ((first - last) * s) / nStrokes);
      const segs = pts.length === 1 ? [[0, 0]] : pts.slice(1).map((_, i) => [i, i + 1]);
      for (const [a, b] of segs) {
        const time = rint(first - (first - last) * ((start + a + start + b) / 2 / nSteps));
        thickLine(img, pts[a], pts[b], [255, order, time], spec.thickness, 3, spec.shift);
      }
      start += pts.length;
    });
  }
  // HWC -> CHW
  const { size, channels } = spec, hw = size * size;
  const out = new Uint8Array(channels * hw);
  for (let i = 0; i < hw; i++) for (let c = 0; c < channels; c++) out[c * hw + i] = img.data[i * channels + c];
  return out;
}
