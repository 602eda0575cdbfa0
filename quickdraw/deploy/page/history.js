// The guess history of the drawing on the canvas, the game-style announcement and "what are you
// drawing?": quickdraw/serving/guessing.py (the demo's) in JavaScript, rule for rule. Both are
// tested on the same cases (tests/helpers/guessing_cases.py).
//
// One step per stroke: the top guess for the drawing as it was when that stroke ended (its first k
// strokes, simplified on their own). Steps are kept by their prefix, so a new stroke costs one
// guess, undo drops the steps after it and clearing empties the history.

// The game's rule: confident enough to say it out loud (never, with `threshold` null).
export function accepted(probability, threshold) {
  return threshold !== null && threshold !== undefined && probability >= threshold;
}

// `I know — it's a cat!` (an apple, the Eiffel Tower).
export function announcement(word) {
  if (word.toLowerCase().startsWith("the ")) return `I know — it's ${word}!`;
  return `I know — it's ${"aeiou".includes(word.slice(0, 1).toLowerCase()) ? "an" : "a"} ${word}!`;
}

// The spelling-free form of a class name (quickdraw.data.labels.word_key).
export function wordKey(word) {
  return word.replaceAll("_", " ").split(/\s+/).filter(Boolean).join(" ").toLowerCase();
}

function endSeconds(stroke) {
  const ts = stroke.length > 2 ? stroke[2] : null;
  return ts && ts.length ? Math.max(...ts) / 1000 : null;
}

export class GuessHistory {
  constructor(threshold) { // the page passes page.json accept_threshold (null: never announce)
    this.threshold = threshold;
    this.steps = []; // {strokes, seconds, word, probability}
    this.keys = []; // each step's last stroke as JSON: steps match while their strokes do
  }

  // Bring the history to `drawing` (raw strokes), asking `guess(counts)` -> [[word, p], ...] (may
  // be async) only for the prefixes not seen before; an empty drawing empties it.
  async update(drawing, guess) {
    const keys = drawing.map((stroke) => JSON.stringify(stroke));
    let same = 0;
    while (same < Math.min(keys.length, this.keys.length) && keys[same] === this.keys[same]) same++;
    this.steps.length = same;
    this.keys.length = same;
    const todo = [];
    for (let k = same + 1; k <= keys.length; k++) todo.push(k);
    if (!todo.length) return;
    const guesses = await guess(todo);
    todo.forEach((k, i) => {
      const [word, p] = guesses[i];
      this.steps.push({ strokes: k, seconds: endSeconds(drawing[k - 1]), word, probability: p });
    });
    this.keys = keys;
  }

  // The step announced now: the latest one whose guess met the acceptance rule.
  get announcedStep() {
    for (let i = this.steps.length - 1; i >= 0; i--) {
      if (accepted(this.steps[i].probability, this.threshold)) return this.steps[i];
    }
    return null;
  }

  // The first step at which the model got `target`: its top guess, accepted (announcements off:
  // simply its top guess).
  recognised(target) {
    const want = wordKey(target);
    return this.steps.find((s) => wordKey(s.word) === want
      && (this.threshold === null || accepted(s.probability, this.threshold))) ?? null;
  }

  // What the page says about the optional "what are you drawing?" answer.
  targetStatus(target, classes) {
    target = (target || "").trim();
    if (!target) return "";
    if (!classes.some((c) => wordKey(c) === wordKey(target))) {
      return `“${target}” is not one of the model's ${classes.length} classes.`;
    }
    const step = this.recognised(target);
    if (!step) return this.steps.length ? `Not got “${target}” yet.` : "";
    const when = step.seconds !== null ? ` and ${step.seconds.toFixed(1)} s` : "";
    return `Got “${step.word}” after ${step.strokes} stroke${step.strokes !== 1 ? "s" : ""}${when}.`;
  }
}
