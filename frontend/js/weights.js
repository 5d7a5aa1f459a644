// Change a painting's loss weights while it paints (or waits): content, style and smoothness, each a
// number and a slider on a log scale (these weights span orders of magnitude: 0.001 to 1e6; the
// slider's far left is 0), and Apply. The worker takes them at its next iteration; the loss chart
// marks each change there, and `describeChange` words the history for the painting's parameters.

export const WEIGHTS = [
  { name: "content_weight", label: "Content", short: "content" },
  { name: "style_weight", label: "Style", short: "style" },
  { name: "tv_weight", label: "Smoothness", short: "smoothness" },
];
export const MIN_LOG = -3; // the slider's 0.001; one step further left is 0
export const MAX_LOG = 6; // 1e6, the largest any weight may be (painting.params)
const STEP = 0.05; // log10 units: about 12 % a step

/** A weight for the eye: 3 significant digits, no exponent below a million. */
export function formatWeight(value) {
  if (value === 0) return "0";
  if (Math.abs(value) >= 1e6 || Math.abs(value) < 1e-3) return value.toExponential(2).replace(/\.?0+e/, "e");
  return String(Number(value.toPrecision(3)));
}

/** The slider's position (log10 units) for a weight; 0 sits one step left of MIN_LOG. */
export function toSlider(value) {
  if (!(value > 0)) return MIN_LOG - STEP;
  return Math.min(MAX_LOG, Math.max(MIN_LOG, Math.log10(value)));
}

/** The weight at a slider position, rounded to 3 significant digits (what a person can read and set). */
export function fromSlider(position) {
  if (position < MIN_LOG) return 0;
  return Number((10 ** position).toPrecision(3));
}

/** "style 100 · smoothness 0" : the weights a change set that differ from `before` (all of them without it). */
export function describeWeights(weights, before = null) {
  return WEIGHTS.filter((w) => !before || before[w.name] !== weights[w.name])
    .map((w) => `${w.short} ${formatWeight(weights[w.name])}`).join(" · ") || "the same weights";
}

/** One line of the history: where the change took effect (or that it has not yet), what it set, when. */
export function describeChange(change, before, finished) {
  const when = new Date(change.at).toLocaleTimeString();
  const where = change.iteration != null ? `From iteration ${change.iteration}`
    : finished ? "Not applied (the painting ended first)" : "Waiting for the next iteration";
  return `${where}: ${describeWeights(change.weights, before)} (asked at ${when})`;
}

/** The marks for the loss chart: one per change the worker has painted with, labelled with what it changed. */
export function changeMarks(changes) {
  let before = null;
  const marks = [];
  for (const change of changes || []) {
    if (change.iteration != null) marks.push({ iteration: change.iteration, label: describeWeights(change.weights, before) });
    before = change.weights;
  }
  return marks;
}

export class WeightsPanel {
  /** @param root  a <form> to fill; @param apply(weights) returns a promise of the painting (or throws) */
  constructor(root, apply) {
    this.root = root;
    this.apply = apply;
    this.paintingId = null;
    this.shown = null; // the weights the inputs were last set from (the painting's, or what was applied)
    this.rows = new Map();
    const fields = document.createElement("div");
    fields.className = "weights-fields";
    for (const weight of WEIGHTS) fields.append(this.buildRow(weight));
    const title = document.createElement("p");
    title.className = "weights-title";
    title.textContent = "Change the weights while it paints";
    const help = document.createElement("p");
    help.className = "help";
    help.textContent = "Taken at the next iteration (the loss chart marks it), and kept if the painting resumes.";
    const actions = document.createElement("div");
    actions.className = "weights-actions";
    this.button = document.createElement("button");
    this.button.type = "submit";
    this.button.className = "secondary";
    this.button.id = "weights-apply";
    this.button.textContent = "Apply";
    this.status = document.createElement("span");
    this.status.className = "help";
    this.status.id = "weights-status";
    this.status.setAttribute("role", "status");
    actions.append(this.button, this.status);
    root.replaceChildren(title, fields, help, actions);
    root.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  buildRow({ name, label }) {
    const row = document.createElement("div");
    row.className = "weight-row";
    row.dataset.weight = name;
    const id = `weight-${name}`;
    const caption = document.createElement("label");
    caption.htmlFor = id;
    caption.textContent = label;
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = String(MIN_LOG - STEP);
    slider.max = String(MAX_LOG);
    slider.step = String(STEP);
    slider.setAttribute("aria-label", `${label} weight (log scale)`);
    const number = document.createElement("input");
    number.type = "number";
    number.id = id;
    number.min = "0";
    number.max = String(10 ** MAX_LOG);
    number.step = "any";
    number.inputMode = "decimal";
    slider.addEventListener("input", () => {
      number.value = String(fromSlider(Number(slider.value)));
      this.changed();
    });
    number.addEventListener("input", () => {
      const value = Number(number.value);
      if (number.value.trim() !== "" && Number.isFinite(value)) slider.value = String(toSlider(value));
      this.changed();
    });
    row.append(caption, slider, number);
    this.rows.set(name, { slider, number });
    return row;
  }

  /** Show for `painting` when it can still take weights (and this browser may change it); else hide. */
  show(painting, changeable) {
    this.root.hidden = !changeable;
    if (!changeable) return;
    const weights = Object.fromEntries(WEIGHTS.map((w) => [w.name, painting.params[w.name]]));
    const same = this.shown && WEIGHTS.every((w) => this.shown[w.name] === weights[w.name]);
    // A new painting, or new weights from elsewhere (another tab), unless someone is editing here.
    if (this.paintingId !== painting.id || (!same && !this.dirty)) {
      this.paintingId = painting.id;
      this.set(weights);
      this.status.textContent = "";
    }
  }

  set(weights) {
    for (const [name, { slider, number }] of this.rows) {
      number.value = String(weights[name]);
      slider.value = String(toSlider(weights[name]));
    }
    this.shown = { ...weights };
    this.dirty = false;
    this.button.disabled = true;
  }

  changed() {
    this.dirty = true;
    this.button.disabled = false;
    this.status.textContent = "";
  }

  /** The weights in the inputs; throws a sentence naming the first one out of range. */
  read() {
    const weights = {};
    for (const { name, label } of WEIGHTS) {
      const text = this.rows.get(name).number.value.trim();
      const value = Number(text);
      if (text === "" || !Number.isFinite(value) || value < 0 || value > 10 ** MAX_LOG) {
        throw new Error(`${label}: enter a number from 0 to 1000000.`);
      }
      weights[name] = value;
    }
    return weights;
  }

  async submit() {
    let weights;
    try {
      weights = this.read();
    } catch (error) {
      this.status.textContent = error.message;
      return;
    }
    this.button.disabled = true;
    this.status.textContent = "Applying…";
    try {
      await this.apply(weights);
      this.set(weights);
      this.status.textContent = "Applied: the painting takes them at its next iteration.";
    } catch (error) {
      this.button.disabled = false;
      this.status.textContent = `Could not apply: ${error.message}`;
    }
  }
}
