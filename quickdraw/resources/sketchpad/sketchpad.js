// Sketchpad for `python -m quickdraw.demo`: the body of a gr.HTML `js_on_load`, run with
// `element` (this component's root), `trigger` (fires a Gradio event) and `props`.
//
// The drawing is kept exactly as Quick, Draw! records raw drawings: a list of strokes, each
// [[x...], [y...], [t...]] in canvas pixels and milliseconds since the first point, in the
// order they were drawn. After every finished stroke (and every `props.live_ms` while the pen
// is down) the whole drawing becomes the component's value and the "stroke" event sends it to
// the server, which simplifies and rasterises it like the training data.
(() => {
  const canvas = element.querySelector("canvas.qd-canvas");
  const hint = element.querySelector(".qd-hint");
  const ctx = canvas.getContext("2d");
  const liveMs = Number(props.live_ms) || 0;
  const INK = "#1f2937";
  const WIDTH = 4; // CSS px

  let strokes = []; // finished strokes
  let current = null; // the stroke under the pen
  let pen = null; // the pointerId drawing it: a second finger or pen is ignored until it lifts
  let t0 = null; // time of the drawing's first point
  let lastSent = 0;

  function fitCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const box = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(box.width * dpr));
    canvas.height = Math.max(1, Math.round(box.height * dpr));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); // draw in CSS px, the unit strokes are recorded in
    redraw();
  }

  function path(stroke, from) {
    const [xs, ys] = stroke;
    const start = Math.max(0, from);
    ctx.beginPath();
    ctx.moveTo(xs[start], ys[start]);
    for (let i = start + 1; i < xs.length; i++) ctx.lineTo(xs[i], ys[i]);
    if (xs.length - start === 1) ctx.lineTo(xs[start] + 0.01, ys[start]); // a dot
    ctx.stroke();
  }

  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = WIDTH;
    ctx.strokeStyle = INK;
    for (const s of strokes) path(s, 0);
    if (current) path(current, 0);
    hint.style.display = strokes.length || current ? "none" : "";
  }

  function addPoint(event) {
    const box = canvas.getBoundingClientRect();
    const now = event.timeStamp || performance.now();
    if (t0 === null) t0 = now;
    current[0].push(Math.round((event.clientX - box.left) * 10) / 10);
    current[1].push(Math.round((event.clientY - box.top) * 10) / 10);
    current[2].push(Math.max(0, Math.round(now - t0)));
  }

  function send() {
    const drawing = current ? strokes.concat([current]) : strokes;
    // The exported page (quickdraw/deploy/page): the arrays, no JSON, and whether the pen is up.
    if (props.take) props.take(drawing, current === null);
    else {
      props.value = JSON.stringify(drawing);
      trigger("stroke");
    }
    lastSent = performance.now();
  }

  canvas.addEventListener("pointerdown", (e) => {
    if ((e.pointerType === "mouse" && e.button !== 0) || (current && e.pointerId !== pen)) return;
    e.preventDefault();
    pen = e.pointerId;
    canvas.setPointerCapture(e.pointerId);
    current = [[], [], []];
    addPoint(e);
    redraw();
  });

  // Moves: `pointerrawupdate` where the browser has it (Chromium, in secure contexts: https and
  // localhost), else `pointermove`. Chromium holds pointermove back until just before the next
  // animation frame, a median ~10 ms at 60 Hz; the raw event comes as soon as the move happens, so
  // a guess can start a frame earlier. Both carry the same points (with their coalesced events).
  const MOVE = "onpointerrawupdate" in window ? "pointerrawupdate" : "pointermove";
  if (props.take) props.move_event = MOVE; // the exported page times the pad's events (not Gradio's props)
  canvas.addEventListener(MOVE, (e) => {
    if (!current || e.pointerId !== pen) return;
    const from = current[0].length - 1;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) addPoint(ev);
    path(current, from);
    if (liveMs > 0 && performance.now() - lastSent >= liveMs) send();
  });

  function finish(e) {
    if (!current || e.pointerId !== pen) return;
    if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    strokes.push(current);
    current = null;
    send();
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  canvas.addEventListener("lostpointercapture", finish); // the browser took the pointer away

  element.querySelector(".qd-undo").addEventListener("click", () => {
    if (!strokes.length) return;
    strokes.pop();
    if (!strokes.length) t0 = null;
    redraw();
    send();
  });

  element.querySelector(".qd-clear").addEventListener("click", () => {
    strokes = [];
    current = null;
    t0 = null;
    redraw();
    send();
  });

  new ResizeObserver(fitCanvas).observe(canvas);
  fitCanvas();
})();
