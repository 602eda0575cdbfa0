// The exported page: the demo's sketchpad, the Python preprocessing re-done in raster.js, and the
// ONNX model run by onnxruntime-web (WASM) on this device. Everything it loads comes from this
// folder (written by `python -m quickdraw.export ... format=web`); after load it makes no request.
//
// Guessing keeps up with the hand: every pointer move asks for a guess, always on the newest
// drawing (moves that arrive meanwhile are folded into the next one). The network runs in Web
// Workers (worker.js), one guess each, so the pen never waits for it; with two workers a new guess
// starts while the previous one still runs, so a move waits for one network pass, not up to two.
// Moves come as `pointerrawupdate` where the browser has it (sketchpad.js), as soon as the hand
// moves, rather than as `pointermove`, which Chromium holds until just before the next frame (a
// median 10 ms of every move's latency, measured by python -m benchmarks.export).
// At most one guess starts per displayed frame: a start closes the gate until the next animation
// frame (the browser's frames, not a 16.7 ms timer, which made moves that came a little early wait).
// `window.quickdraw` exposes the pipeline for the tests and the benchmarks.
import { GuessHistory, announcement } from "./history.js";
import { DrawingRejected, rasterize, simplifyDrawing } from "./raster.js";
import { penMoves } from "./sequence.js";

const HINT = "Draw something on the canvas: the model guesses while you draw.";
const $ = (sel) => document.querySelector(sel);

// A page that cannot load says why where the guesses would be, not only in the console.
function failed(what, e) {
  $("#status").textContent = `The page could not ${what}: ${e.message ?? e}. Serve this folder `
    + "as written by `python -m quickdraw.export ... format=web`, e.g. `python -m http.server --bind 127.0.0.1 -d DIR`.";
  throw e;
}

async function get(path, as) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r[as]();
}

const [meta, page, padHtml, padJs] = await Promise.all([
  get("model.json", "json"), get("page.json", "json"),
  get("sketchpad.html", "text"), get("sketchpad.js", "text"),
]).catch((e) => failed("load its files", e));
// The model and the WASM runtime are fetched once, here, and copied to each worker (each fetching
// its own would download them once a worker).
let [modelBytes, wasmBytes] = await Promise.all([
  get(page.model, "arrayBuffer"), get(page.runtime, "arrayBuffer"),
]).catch((e) => failed("load the model", e));
// The model's input, built as model.json's `input.kind` says: the raster (raster.js) of an image
// model, or the pen moves (sequence.js) of a stroke-sequence one, whose page still draws the
// drawing (model.json's `preview`) where an image model's input is shown.
const sequence = meta.input.kind === "sequence";
const spec = sequence ? meta.preview : meta.raster;
const shape = [1, spec.channels, spec.size, spec.size];
const modelInput = sequence
  ? (strokes) => penMoves(strokes, meta.input)
  : (strokes, image) => [{ type: "uint8", data: image.slice(), dims: shape }];

// Workers: two where the device has two cores or more (a guess starts while the previous one
// finishes, so a move need not wait for it), else one. Even on two cores, where both passes slow
// a little when they overlap, two gave the steadier fp32 p95 (docs/results/export.md:
// python -m benchmarks.export --page-as this,1core).
const WORKERS = Math.min(2, navigator.hardwareConcurrency || 1);

function startWorker() {
  const worker = new Worker("worker.js", { type: "module" });
  const slot = { worker, pending: new Map(), next: 0 };
  return new Promise((resolve, reject) => {
    worker.onerror = (e) => reject(new Error(`worker.js: ${e.message}`));
    worker.onmessage = ({ data }) => {
      if (data.ready) return void resolve(slot);
      const call = slot.pending.get(data.id);
      if (!call) return void (data.error && reject(new Error(data.error)));
      slot.pending.delete(data.id);
      data.error ? call.reject(new Error(data.error)) : call.resolve(data.probs);
    };
    const [model, wasm] = [modelBytes.slice(0), wasmBytes.slice(0)]; // a copy each, moved over
    worker.postMessage({ model, wasm, name: page.model }, [model, wasm]);
  });
}
const pool = await Promise.all(Array.from({ length: WORKERS }, startWorker))
  .catch((e) => failed(`start the model (${page.model})`, e));
modelBytes = wasmBytes = null; // the workers hold their copies

function preprocess(drawing) {
  // Raw strokes [[xs, ys, ts], ...] -> {strokes, image, input}: `image` what the page shows (the
  // model's raster, or the preview), `input` the graph's inputs; both null for an empty drawing.
  const strokes = simplifyDrawing(drawing, page.max_points, page.max_strokes);
  if (!strokes) return { strokes, image: null, input: null };
  const image = rasterize(strokes, spec);
  return { strokes, image, input: modelInput(strokes, image) };
}

function classify(input) {
  // The graph's inputs (preprocess's `input`) -> Float32Array (K,) probabilities, on the least
  // busy worker. Their buffers move to the worker: the caller must not use them afterwards.
  const slot = pool.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  const id = slot.next++;
  return new Promise((resolve, reject) => {
    slot.pending.set(id, { resolve, reject });
    slot.worker.postMessage({ id, inputs: input }, input.map((x) => x.data.buffer));
  });
}

function topK(probs, k) {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
  return order.slice(0, k).map((i) => [meta.classes[i], probs[i]]);
}

// The guesses and the model's input are updated in place: rows made once, bars scaled by the
// compositor, one image buffer. Rebuilding them on every guess (a guess a frame while drawing)
// cost the browser 0.2-0.3 more core-seconds over a 4 s stroke (2-core machine), in layout and
// paint, time the network then lacked.
const rows = Array.from({ length: page.top_k }, () => {
  const li = document.createElement("li");
  li.innerHTML = '<div class="bar"></div><span class="name"></span><span class="p"></span>';
  return { li, bar: li.firstChild, name: li.children[1], p: li.children[2] };
});
const inputView = $("#model-input canvas");
inputView.width = inputView.height = spec.size;
const viewCtx = inputView.getContext("2d");
const pixels = viewCtx.createImageData(spec.size, spec.size);

function show(top, image, status) {
  $("#status").textContent = status;
  const list = $("#guesses");
  if (list.children.length !== top.length) list.replaceChildren(...rows.slice(0, top.length).map((r) => r.li));
  top.forEach(([name, p], i) => {
    const row = rows[i];
    if (row.name.textContent !== name) row.name.textContent = name;
    row.p.textContent = `${(100 * p).toFixed(0)}%`;
    row.bar.style.transform = `scaleX(${p.toFixed(3)})`;
  });
  const hw = spec.size * spec.size;
  for (let i = 0; i < hw; i++) {
    for (let c = 0; c < 3; c++) pixels.data[4 * i + c] = image ? image[(spec.channels === 3 ? c : 0) * hw + i] : 0;
    pixels.data[4 * i + 3] = 255;
  }
  viewCtx.putImageData(pixels, 0, 0);
}

// -- the loop: newest drawing, at most one guess per worker and one start per frame ---------------
// live_ms 1: the pad asks on every pointer move. `take` gets the pad's drawing itself (its live
// arrays, read before the next move can change them), not the JSON the Gradio demo sends: raw
// pointer events come at the device's rate (up to 1000 Hz), too often to serialise it every time.
// `settled`: no stroke under the pen (a stroke ended, undo, clear): the history follows then.
let drawing = [];
const props = { live_ms: 1, take: (d, settled) => ((drawing = d), request(), settled && follow(d.slice())) };
const state = {
  get latest() { return JSON.stringify(drawing); }, // the drawing the next guess sees, as JSON
  waiting: [], asked: [], gate: true, running: 0, busy: false, started: -Infinity,
  sent: 0, shown: 0, guesses: 0, latencies: [],
  // Where each answered move's time went (ms): [input (event -> the page's handler), queue (handler
  // -> its guess starts), preprocess, network (worker round trip), show]; their sum is its latency.
  stages: [],
};

// The latency clock starts when the browser made the input event (event.timeStamp), not when the
// pad's handler ran.
let inputTime = null;

function request() {
  const now = performance.now();
  state.waiting.push([inputTime ?? now, now]);
  inputTime = null;
  schedule();
}

function schedule() {
  if (state.running < pool.length && state.gate && state.waiting.length) guess();
}

function closeGate() {
  // Until the next frame; a hidden page gets no frames, and needs no guesses until it is shown.
  state.gate = false;
  requestAnimationFrame(() => ((state.gate = true), schedule()));
}

async function guess() {
  const seq = ++state.sent;
  state.running++;
  state.busy = true;
  state.started = performance.now();
  closeGate();
  state.asked.push([seq, state.waiting]);
  state.waiting = [];
  let view;
  const t = [state.started, state.started, state.started]; // start, preprocessed, network done
  try {
    const { strokes, image, input } = preprocess(drawing);
    t[1] = t[2] = performance.now();
    if (!image) view = [[], null, HINT];
    else {
      const top = topK(await classify(input), page.top_k);
      t[2] = performance.now();
      const n = strokes.length;
      view = [top, image, `${n} stroke${n === 1 ? "" : "s"}, ${(t[2] - t[1]).toFixed(0)} ms on this device`];
    }
  } catch (e) {
    if (!(e instanceof DrawingRejected)) throw e;
    view = [[], null, `That drawing is too big (${e.message}). Undo a stroke or clear the canvas.`];
  } finally {
    state.running--;
    state.busy = state.running > 0;
  }
  if (seq > state.shown) {
    // A newer drawing than on screen: show it, and it answers every move up to it.
    state.shown = seq;
    show(...view);
    const now = performance.now();
    while (state.asked.length && state.asked[0][0] <= seq) {
      // Moves of an older guess still running are answered by this newer one: they queued until it started.
      for (const [event, handler] of state.asked.shift()[1]) {
        state.latencies.push(now - event);
        state.stages.push([handler - event, t[0] - handler, t[1] - t[0], t[2] - t[1], now - t[2]]);
      }
    }
    state.guesses++;
    document.dispatchEvent(new CustomEvent("qd-guess", { detail: state.guesses }));
  }
  schedule(); // moves that came during this guess
}

const pad = $("#sketchpad");
pad.innerHTML = padHtml;
// sketchpad.js is the demo's gr.HTML `js_on_load` body: it gets its element, props and trigger.
new Function("element", "props", "trigger", padJs)(pad, props, request);
// The events the pad draws from (its move event: pointerrawupdate where the browser has it).
for (const type of ["pointerdown", props.move_event, "pointerup", "pointercancel"])
  pad.addEventListener(type, (e) => (inputTime = e.timeStamp), { capture: true });
// The credit line follows the training data's recorded origin (model.json `data.origin`): Quick,
// Draw! data must be credited (CC BY 4.0); the generated doodles are not Quick, Draw! data.
const TRAINED_ON = {
  quickdraw: "Trained on Quick, Draw! data (Google, CC BY 4.0).",
  generated: "Trained on the project's generated doodles, not on Quick, Draw! data.",
  mixed: "Trained on Quick, Draw! data (Google, CC BY 4.0) and the project's generated doodles.",
};
function trainedOn(origin) {
  if (origin == null || origin === "") return "Its training data is not recorded in the checkpoint it was exported from.";
  return Object.hasOwn(TRAINED_ON, origin) ? TRAINED_ON[origin] : `Its training data's origin, "${origin}", is not one this page knows.`;
}
const reads = sequence ? `pen moves of its first ${meta.input.max_points} points` : `${spec.size} px ${spec.encoding} input`;
if (sequence) $("#model-input .qd-caption").textContent = "the drawing (the network reads its pen moves)";
$("#about").textContent = `Model: ${meta.arch}, ${meta.classes.length} classes, ${reads}, `
  + `${page.model} (quickdraw ${meta.quickdraw_version}). ${trainedOn(meta.data?.origin)}`;
// -- the guess history, the announcement and "what are you drawing?" (history.js) -----------------
const history = new GuessHistory(page.accept_threshold ?? null);
let following = Promise.resolve(); // updates run one after another, each against the history so far
let followed = 0;

async function topOfPrefixes(d, counts) {
  // The top guess of the first k strokes for each k, each prefix simplified on its own (as the demo).
  const out = [];
  for (const k of counts) {
    const { input } = preprocess(d.slice(0, k));
    if (!input) throw new DrawingRejected("an empty prefix"); // the demo's EmptyDrawing: no step
    const top = topK(await classify(input), 1)[0];
    out.push(top);
  }
  return out;
}

function follow(d) {
  following = following.then(async () => {
    try {
      await history.update(d, (counts) => topOfPrefixes(d, counts));
    } catch (e) {
      if (!(e instanceof DrawingRejected)) throw e; // the status line says why; the history stays
    }
    showHistory();
    document.dispatchEvent(new CustomEvent("qd-history", { detail: ++followed }));
  });
  return following;
}

function showHistory() {
  const step = history.announcedStep;
  $("#announce").textContent = step ? announcement(step.word) : "";
  $("#got").textContent = history.targetStatus($("#target").value, meta.classes);
  const body = $("#history tbody");
  body.replaceChildren(...history.steps.map((s) => {
    const tr = document.createElement("tr");
    const p = `${(100 * s.probability).toFixed(0)}%${history.threshold !== null && s.probability >= history.threshold ? " ✓" : ""}`;
    for (const text of [s.strokes, s.seconds === null ? "" : s.seconds.toFixed(1), s.word, p]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
  $("#history-empty").hidden = history.steps.length > 0;
}
$("#target").addEventListener("input", showHistory);

// The classes the model knows, alphabetically: what is worth drawing.
const known = [...meta.classes].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
$("#classes summary").textContent = `The ${known.length} things this model knows: draw one of them`;
$("#classes p").textContent = known.join(", ");
$("#classes").open = known.length <= 20;

show([], null, HINT);
showHistory();

window.quickdraw = {
  meta, page, preprocess, classify, topK, state, workers: pool.length, history, follow, GuessHistory, showHistory,
  get followed() { return followed; }, ready: true,
};
document.dispatchEvent(new CustomEvent("qd-ready"));
