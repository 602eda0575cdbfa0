// The exported page: the demo's sketchpad, the Python preprocessing re-done in raster.js, and the
// ONNX model run by onnxruntime-web (WASM) on this device. Everything it loads comes from this
// folder (written by `python -m quickdraw.export ... format=web`); after load it makes no request.
//
// Guessing keeps up with the hand: every pointer move asks for a guess, and at most one guess
// runs per animation frame, always on the newest drawing (moves that arrive meanwhile are folded
// into the next one). `window.quickdraw` exposes the pipeline for the tests and the benchmarks.
import * as ort from "./ort/ort.wasm.bundle.min.mjs";
import { DrawingRejected, rasterize, simplifyDrawing } from "./raster.js";

const HINT = "Draw something on the canvas: the model guesses while you draw.";
const $ = (sel) => document.querySelector(sel);

const [meta, page, padHtml, padJs] = await Promise.all([
  fetch("model.json").then((r) => r.json()),
  fetch("page.json").then((r) => r.json()),
  fetch("sketchpad.html").then((r) => r.text()),
  fetch("sketchpad.js").then((r) => r.text()),
]);
const spec = meta.raster;
const shape = [1, spec.channels, spec.size, spec.size];

// One thread: multi-threaded WASM needs cross-origin isolation headers a plain static host lacks.
ort.env.wasm.numThreads = 1;
const session = await ort.InferenceSession.create(page.model, {
  executionProviders: ["wasm"],
  graphOptimizationLevel: "all",
});

function preprocess(drawing) {
  // Raw strokes [[xs, ys, ts], ...] -> {strokes, image}: null image for an empty drawing.
  const strokes = simplifyDrawing(drawing, page.max_points);
  return { strokes, image: strokes ? rasterize(strokes, spec) : null };
}

async function classify(image) {
  const input = new ort.Tensor("uint8", image, shape);
  const out = await session.run({ [session.inputNames[0]]: input });
  return out[session.outputNames[0]].data; // Float32Array (K,)
}

function topK(probs, k) {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
  return order.slice(0, k).map((i) => [meta.classes[i], probs[i]]);
}

function show(top, image, status) {
  $("#status").textContent = status;
  const list = $("#guesses");
  list.replaceChildren(...top.map(([name, p]) => {
    const li = document.createElement("li");
    li.innerHTML = `<div class="bar" style="width:${(100 * p).toFixed(1)}%"></div><span class="name"></span><span class="p">${(100 * p).toFixed(0)}%</span>`;
    li.querySelector(".name").textContent = name;
    return li;
  }));
  const view = $("#model-input canvas");
  view.width = view.height = spec.size;
  const ctx = view.getContext("2d");
  const rgba = ctx.createImageData(spec.size, spec.size);
  const hw = spec.size * spec.size;
  for (let i = 0; i < hw && image; i++) {
    for (let c = 0; c < 3; c++) rgba.data[4 * i + c] = image[(spec.channels === 3 ? c : 0) * hw + i];
    rgba.data[4 * i + 3] = 255;
  }
  ctx.putImageData(rgba, 0, 0);
}

// -- the loop: newest drawing, one guess per frame --------------------------------------------------
const props = { value: "[]", live_ms: 1 }; // live_ms 1: the pad asks on every pointer move
const state = { latest: "[]", waiting: [], frame: false, busy: false, guesses: 0, latencies: [] };

function request() {
  state.latest = props.value;
  state.waiting.push(performance.now());
  if (!state.frame) {
    state.frame = true;
    requestAnimationFrame(guess);
  }
}

async function guess() {
  state.frame = false;
  if (state.busy) return void (state.frame = true, requestAnimationFrame(guess));
  state.busy = true;
  const asked = state.waiting;
  state.waiting = [];
  try {
    const { strokes, image } = preprocess(JSON.parse(state.latest));
    if (!image) show([], null, HINT);
    else {
      const t0 = performance.now();
      const top = topK(await classify(image), page.top_k);
      const n = strokes.length;
      show(top, image, `${n} stroke${n === 1 ? "" : "s"}, ${(performance.now() - t0).toFixed(0)} ms on this device`);
    }
  } catch (e) {
    if (!(e instanceof DrawingRejected)) throw e;
    show([], null, `That drawing is too big (${e.message}). Undo a stroke or clear the canvas.`);
  } finally {
    state.busy = false;
  }
  const now = performance.now();
  for (const t of asked) state.latencies.push(now - t);
  state.guesses++;
  document.dispatchEvent(new CustomEvent("qd-guess", { detail: state.guesses }));
}

const pad = $("#sketchpad");
pad.innerHTML = padHtml;
// sketchpad.js is the demo's gr.HTML `js_on_load` body: it gets its element, props and trigger.
new Function("element", "props", "trigger", padJs)(pad, props, request);
$("#about").textContent = `Model: ${meta.arch}, ${meta.classes.length} classes, ${spec.size} px ${spec.encoding} input, `
  + `${page.model} (quickdraw ${meta.quickdraw_version}). Trained on Quick, Draw! data (Google, CC BY 4.0).`;
show([], null, HINT);

window.quickdraw = { meta, page, preprocess, classify, topK, state, ready: true };
document.dispatchEvent(new CustomEvent("qd-ready"));
