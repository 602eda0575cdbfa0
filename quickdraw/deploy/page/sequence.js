// Simplified strokes -> the pen moves a stroke-sequence model reads, in the browser, bit for bit as
// quickdraw/data/sequence.py (to_sequences) builds them; change the two together.
//
// One row (dx, dy, pen_up) per point, in drawing order: dx, dy the move from the previous point
// (the first from (0, 0)) in the simplified 0..255 frame divided by model.json's `input.frame`
// (255), in float32 as numpy computes it (each coordinate scaled, then subtracted); pen_up 1 on
// each stroke's last point. A drawing keeps its first `input.max_points` points. The graph's
// inputs: `points` float32 (1, T, 3) and `lengths` int64 (1,) (T >= 1; the page never sends an
// empty drawing). tests/deploy/test_web_page.py checks the page's probabilities against Python's.

// Strokes [[xs], [ys]] (0..255 integers) -> [{type, data, dims}] for the graph's two inputs.
export function penMoves(strokes, contract) {
  const scale = Math.fround(1 / contract.frame);
  const total = strokes.reduce((n, [xs]) => n + xs.length, 0);
  const steps = Math.min(total, contract.max_points);
  const points = new Float32Array(3 * steps); // Float32Array stores every value rounded to float32
  let t = 0, px = 0, py = 0;
  for (const [xs, ys] of strokes) {
    for (let i = 0; i < xs.length && t < steps; i++, t++) {
      const x = Math.fround(xs[i] * scale), y = Math.fround(ys[i] * scale);
      points[3 * t] = x - px;
      points[3 * t + 1] = y - py;
      points[3 * t + 2] = i === xs.length - 1 ? 1 : 0;
      [px, py] = [x, y];
    }
  }
  return [
    { type: "float32", data: points, dims: [1, steps, 3] },
    { type: "int64", data: BigInt64Array.of(BigInt(steps)), dims: [1] },
  ];
}
