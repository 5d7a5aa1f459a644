// The "New painting" form: image pickers with thumbnails, and the parameter fields built from
// the API's JSON schema (essentials first, the rest under "Advanced", each with its description).
// The engine chosen decides what the form asks for: the exact and fast engines take a photo and
// style images; a generator model takes a photo (an image model) or nothing but a seed (a latent
// model, with "how many" to make several at once), and never a style. The fast engine also has
// ready-made styles, picked from their thumbnails (the `builtin_styles` field, shown as that picker).

import { imageUrl } from "./api.js";
import { chosenBuiltins, equalBlend, showBuiltinTile } from "./builtins.js";

export const ESSENTIALS = ["engine", "size", "iterations", "strength", "style_weight", "preserve_colors", "model"];
// Fields that are essential for one engine only: a latent model's seed is the picture it paints.
const ESSENTIAL_FOR = { model: ["seed"] };

const LABELS = {
  tv_weight: "Smoothness (TV weight)",
  preview_every: "Preview every",
  preview_seconds: "Preview at least every (s)",
  preserve_colors: "Keep the photo's colours",
  strength: "Style strength",
  builtin_styles: "Built-in styles (weights)",
};

// Fields another control of the form shows and sets, never shown as fields themselves.
const SHOWN_ELSEWHERE = new Set(["builtin_styles"]);

// The words for an enum's values, where the value itself does not read well.
const OPTION_LABELS = {
  engine: { gatys: "Exact (Gatys) — minutes", fast: "Fast — a second", model: "Generator model" },
};

// The line under the engine choice, for the engine chosen.
export const ENGINE_HELP = {
  gatys: "Optimises the painting step by step, with previews as it goes: the most faithful, and it takes minutes.",
  fast: "One pass of a style network: a photo and style images (or its ready-made styles) in, a painting out in about a second.",
  model: "A generator network this Studio serves: it repaints a photo or paints from a seed; no style images.",
};

const KIND_HELP = {
  image: "Repaints your photo; it takes no style images.",
  latent: "Paints a new picture from the seed alone: no photo, no style. Each seed gives another picture.",
};

export const MAX_COUNT = 8; // paintings one "Generate" may start

function labelFor(name, schema) {
  return LABELS[name] || schema.title || name.replace(/_/g, " ");
}

function kindOf(name, schema) {
  if (name === "model") return "model"; // a choice among Studio's models, filled from GET /api/models
  if (schema.enum) return "enum";
  if (schema.type === "boolean") return "boolean";
  if (schema.type === "integer" || schema.type === "number") return schema.type;
  if (schema.type === "object") return "json";
  if (schema.anyOf && schema.anyOf.some((s) => s.type === "array")) return "list";
  return "text";
}

/** One field: its element, and how to read and write its value. */
function buildField(name, schema) {
  const kind = kindOf(name, schema);
  const id = `param-${name}`;
  const wrap = document.createElement("div");
  wrap.className = `field field-${kind}`;
  wrap.dataset.param = name;
  let input;
  if (kind === "enum") {
    input = document.createElement("select");
    const words = OPTION_LABELS[name] || {};
    for (const option of schema.enum) input.add(new Option(words[option] || option, option));
  } else if (kind === "model") {
    input = document.createElement("select");
    input.add(new Option("Loading the models…", ""));
  } else if (kind === "json") {
    input = document.createElement("textarea");
    input.rows = 3;
    input.spellcheck = false;
  } else {
    input = document.createElement("input");
    input.type = kind === "boolean" ? "checkbox" : kind === "integer" || kind === "number" ? "number" : "text";
    if (input.type === "number") {
      if (schema.minimum !== undefined) input.min = schema.minimum;
      if (schema.maximum !== undefined) input.max = schema.maximum;
      input.step = kind === "integer" ? "1" : "any";
      input.inputMode = kind === "integer" ? "numeric" : "decimal";
    }
    if (kind === "list") input.placeholder = "e.g. 1, 0.5 (one per style; empty: equal)";
  }
  input.id = id;
  input.name = name;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = labelFor(name, schema);
  const help = document.createElement("small");
  help.className = "help";
  help.id = `${id}-help`;
  const range = schema.minimum !== undefined && schema.maximum !== undefined ? ` (${schema.minimum}–${schema.maximum})` : "";
  help.textContent = (schema.description || "") + range;
  input.setAttribute("aria-describedby", help.id);
  if (kind === "boolean") {
    label.prepend(input);
    wrap.append(label, help);
  } else {
    wrap.append(label, input, help);
  }

  const field = {
    name, schema, kind, input, help, element: wrap,
    wanted: null, // kind "model": the model asked for, chosen once the list has it
    set(value) {
      if (kind === "model") {
        field.wanted = value == null ? null : String(value);
        if ([...input.options].some((o) => o.value === field.wanted && !o.disabled)) input.value = field.wanted;
      } else if (kind === "boolean") input.checked = Boolean(value);
      else if (kind === "json") input.value = value == null ? "" : JSON.stringify(value, null, 1);
      else if (kind === "list") input.value = Array.isArray(value) ? value.join(", ") : "";
      else input.value = value == null ? "" : String(value);
    },
    get() {
      const label = labelFor(name, schema);
      if (kind === "boolean") return input.checked;
      if (kind === "model") {
        if (!input.value) throw new Error(`${label}: this Studio has no model to paint with.`);
        return input.value;
      }
      const text = input.value.trim();
      if (kind === "integer" || kind === "number") {
        if (text === "") return schema.default;
        const number = Number(text);
        if (!Number.isFinite(number) || (kind === "integer" && !Number.isInteger(number))) {
          throw new Error(`${label}: enter ${kind === "integer" ? "a whole number" : "a number"}.`);
        }
        if (schema.minimum !== undefined && number < schema.minimum) throw new Error(`${label}: the smallest allowed is ${schema.minimum}.`);
        if (schema.maximum !== undefined && number > schema.maximum) throw new Error(`${label}: the largest allowed is ${schema.maximum}.`);
        return number;
      }
      if (kind === "json") {
        if (!text) return schema.default;
        try {
          return JSON.parse(text);
        } catch {
          throw new Error(`${label}: must be JSON, like {"block1_conv1": 1}.`);
        }
      }
      if (kind === "text" && !text && schema.anyOf) return null; // an optional text left empty
      if (kind === "list") {
        if (!text) return null;
        const numbers = text.split(/[\s,;]+/).filter(Boolean).map(Number);
        if (numbers.some((n) => !Number.isFinite(n))) throw new Error(`${label}: enter numbers separated by commas.`);
        return numbers;
      }
      return text;
    },
  };
  field.set(schema.default);
  return field;
}

export class PaintForm {
  /**
   * @param {object} options  onSubmit(form); loadModels(), loadStyles(): promises of GET /api/models's
   *   and GET /api/styles's answers
   */
  constructor(root, { onSubmit, loadModels, loadStyles }) {
    this.root = root;
    this.onSubmit = onSubmit;
    this.loadModels = loadModels;
    this.loadStyles = loadStyles;
    this.builtins = null; // the last answer of GET /api/styles, once its strip of thumbnails has loaded
    this.builtinsLoading = null;
    this.fields = new Map();
    this.content = null;
    this.styles = [];
    this.remixOf = null;
    this.models = null; // the last answer of GET /api/models
    this.modelsLoading = null;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.wirePickers();
    this.$("remix-stop").addEventListener("click", () => this.stopRemix());
    this.$("reset-button").addEventListener("click", () => this.setParams({}));
    this.$("builtin-retry").addEventListener("click", () => this.refreshBuiltins());
    this.$("builtin-clear").addEventListener("click", () => this.setBuiltinWeights(null));
    root.addEventListener("submit", (event) => {
      event.preventDefault();
      this.onSubmit(this);
    });
  }

  build(schema) {
    const essentials = this.$("essentials");
    const advanced = this.$("advanced-fields");
    essentials.replaceChildren();
    advanced.replaceChildren();
    this.fields.clear();
    for (const [name, property] of Object.entries(schema.properties || {})) {
      const field = buildField(name, property);
      this.fields.set(name, field);
      (ESSENTIALS.includes(name) ? essentials : advanced).append(field.element);
    }
    this.fields.get("engine")?.input.addEventListener("change", () => this.showEngineFields());
    this.fields.get("model")?.input.addEventListener("change", () => this.showMode());
    this.showEngineFields();
  }

  /** The chosen engine: "gatys" (exact), "fast" (one pass) or "model" (a generator). */
  engine() {
    return this.fields.get("engine")?.get() || "gatys";
  }

  /** Whether a field applies to the chosen engine (its schema's `x-engines`; none listed: always). */
  applies(field) {
    const engines = field.schema["x-engines"];
    return !engines || engines.includes(this.engine());
  }

  /** Show only the fields the chosen engine reads, and say what the choice means. */
  showEngineFields() {
    const engine = this.engine();
    const essentials = this.$("essentials");
    const advanced = this.$("advanced-fields");
    const extra = ESSENTIAL_FOR[engine] || [];
    const last = new Map(); // container -> the field placed last in it, in the schema's order
    for (const field of this.fields.values()) {
      field.element.hidden = !this.applies(field) || SHOWN_ELSEWHERE.has(field.name);
      if (extra.includes(field.name)) continue; // placed below, after the usual essentials
      const home = ESSENTIALS.includes(field.name) ? essentials : advanced;
      // Move only what changes place (moving a node takes the focus from it), keeping the schema's order.
      if (field.element.parentElement !== home) {
        if (last.has(home)) last.get(home).after(field.element);
        else home.prepend(field.element);
      }
      last.set(home, field.element);
    }
    for (const name of extra) {
      const element = this.fields.get(name)?.element;
      if (element && element.parentElement !== essentials) essentials.append(element);
    }
    this.root.dataset.engine = engine;
    const help = this.fields.get("engine")?.help;
    if (help) help.textContent = ENGINE_HELP[engine] || "";
    if (engine === "model" && !(this.models && this.models.known)) this.refreshModels();
    if (engine === "fast" && !(this.builtins && this.builtins.known)) this.refreshBuiltins();
    this.showMode();
  }

  /** Whether a field that applies is set aside by the choice of ready-made styles: the style images'
   * blend (`style_blend`) means nothing without style images, so it is hidden and not sent. */
  setAside(field) {
    return field.name === "style_blend" && this.usesBuiltinStyles();
  }

  /** Ask Gallery for Studio's models again (one request at a time) and fill the model choice. */
  refreshModels() {
    if (!this.loadModels || this.modelsLoading) return this.modelsLoading;
    this.modelsLoading = this.loadModels()
      .then((answer) => this.setModels(answer))
      .catch((error) => this.setModels({ known: false, models: [], reason: error.message }))
      .finally(() => { this.modelsLoading = null; });
    return this.modelsLoading;
  }

  /** Fill the model choice from GET /api/models: usable models first, refused ones listed but disabled. */
  setModels(answer) {
    this.models = answer;
    const field = this.fields.get("model");
    if (!field) return;
    const select = field.input;
    const models = (answer && answer.models) || [];
    const usable = models.filter((m) => m.ok);
    select.replaceChildren();
    if (!usable.length) select.add(new Option("No models on this Studio", ""));
    for (const model of usable) {
      const option = new Option(`${model.name} — ${model.kind === "latent" ? "paints from a seed" : "repaints a photo"}`, model.name);
      option.dataset.kind = model.kind;
      select.add(option);
    }
    for (const model of models.filter((m) => !m.ok)) {
      const option = new Option(`${model.name} — cannot be used`, model.name);
      option.disabled = true;
      option.title = model.problem || "This model cannot be used.";
      select.add(option);
    }
    const wanted = usable.find((m) => m.name === field.wanted);
    select.value = wanted ? wanted.name : usable.length ? usable[0].name : "";
    this.showMode();
  }

  /** Ask Gallery for the fast engine's ready-made styles again (one request at a time); known only once
   * their strip of thumbnails has loaded too. */
  refreshBuiltins() {
    if (!this.loadStyles || this.builtinsLoading) return this.builtinsLoading;
    this.builtins = null; // "Loading…" meanwhile
    this.showBuiltins();
    this.builtinsLoading = this.loadStyles()
      .then((answer) => (answer.known && answer.sheet ? loadImage(answer.sheet).then(() => answer) : answer))
      .catch((error) => ({ known: false, reason: error.message }))
      .then((answer) => {
        this.builtins = answer;
        this.renderBuiltins();
        this.showMode();
      })
      .finally(() => { this.builtinsLoading = null; });
    return this.builtinsLoading;
  }

  /** How many ready-made styles there are: Gallery's word, else the schema's (the weights it takes). */
  builtinCount() {
    if (this.builtins && this.builtins.count) return this.builtins.count;
    const list = (this.fields.get("builtin_styles")?.schema.anyOf || []).find((s) => s.type === "array");
    return (list && list.minItems) || 26;
  }

  /** The ready-made styles' weights in the field (one per style), or null: none chosen, or not readable. */
  builtinWeights() {
    const field = this.fields.get("builtin_styles");
    let weights = null;
    try {
      weights = field ? field.get() : null;
    } catch {
      return null;
    }
    if (!Array.isArray(weights)) return null;
    return Array.from({ length: this.builtinCount() }, (_, i) => (weights[i] > 0 ? weights[i] : 0));
  }

  /** Choose the ready-made styles by their weights (null: none, paint with style images). */
  setBuiltinWeights(weights) {
    this.fields.get("builtin_styles")?.set(weights && weights.some((w) => w > 0) ? weights : null);
    this.showMode();
  }

  /** Choose or drop one ready-made style: chosen ones weigh 1 (several: an equal blend), the others 0. */
  toggleBuiltin(index) {
    const weights = this.builtinWeights() || new Array(this.builtinCount()).fill(0);
    weights[index] = weights[index] > 0 ? 0 : 1;
    this.setBuiltinWeights(weights);
  }

  /** Whether the ready-made styles are offered: the fast engine, for a new painting or the remix of one
   * made with them (a remix paints the original's images, so one made from style images keeps them). */
  builtinsOffered() {
    if (this.engine() !== "fast" || !this.fields.has("builtin_styles")) return false;
    const remix = this.remixOf;
    return !remix || (remix.content_image != null && !remix.styles.length);
  }

  /** One button per ready-made style, each showing its part of the strip of thumbnails. */
  renderBuiltins() {
    const grid = this.$("builtin-grid");
    const answer = this.builtins;
    if (!answer || !answer.known || !answer.sheet) {
      grid.replaceChildren();
      return;
    }
    const count = this.builtinCount();
    grid.replaceChildren(...Array.from({ length: count }, (_, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "builtin-tile";
      button.dataset.index = String(i);
      button.setAttribute("aria-label", `Built-in style ${i + 1}`);
      button.setAttribute("aria-pressed", "false");
      showBuiltinTile(button, answer, i, count);
      button.addEventListener("click", () => this.toggleBuiltin(i));
      return button;
    }));
  }

  /** The ready-made styles section: shown for the fast engine, with the chosen ones pressed, and what is chosen. */
  showBuiltins() {
    this.$("builtin-styles").hidden = !this.builtinsOffered();
    this.$("builtin-hint").textContent = this.remixOf ? "Its photo was painted with these: pick the ones to remix it with"
      : "Or pick one or more of the fast engine's own styles instead of style images";
    const weights = this.builtinWeights();
    const chosen = weights ? weights.filter((w) => w > 0).length : 0;
    for (const button of this.$("builtin-grid").children) {
      const weight = weights ? weights[Number(button.dataset.index)] : 0;
      button.setAttribute("aria-pressed", String(weight > 0));
      button.title = `${button.getAttribute("aria-label")}${weight > 0 && weight !== 1 ? ` (weight ${weight})` : ""}`;
    }
    const answer = this.builtins;
    const status = !answer ? "Loading the ready-made styles…"
      : !answer.known || !answer.sheet ? `The ready-made styles are not available now${answer.reason ? `: ${answer.reason}` : ""}.`
      : "";
    const equal = equalBlend(chosenBuiltins(weights));
    const picked = !chosen ? "" : chosen === 1 ? "1 chosen." : `${chosen} chosen: ${equal ? "an equal blend" : "a blend"}.`;
    this.$("builtin-status-text").textContent = [status, picked].filter(Boolean).join(" ");
    this.$("builtin-retry").hidden = !answer || (answer.known && Boolean(answer.sheet));
    this.$("builtin-clear").hidden = !chosen || Boolean(this.remixOf); // a remix of ready-made styles has no style images
  }

  /** The chosen model as Studio lists it, or null (another engine, none chosen, the list not known). */
  model() {
    if (this.engine() !== "model" || !this.models) return null;
    const name = this.fields.get("model")?.input.value;
    return (this.models.models || []).find((m) => m.name === name && m.ok) || null;
  }

  /** What the chosen engine paints from: {photo: "need" | "may" | "no", styles, latent: bool}. A model of
   * an unknown kind (Studio cannot list its models now) may take a photo: Studio decides. */
  needs() {
    if (this.engine() !== "model") return { photo: "need", styles: !this.usesBuiltinStyles(), latent: false };
    const kind = this.model()?.kind;
    const none = !kind && this.models && this.models.known; // Studio has no usable model: nothing to pick
    return { photo: kind === "image" ? "need" : kind === "latent" || none ? "no" : "may", styles: false, latent: kind === "latent" };
  }

  /** Whether the fast engine paints with its built-in styles (their weights given) instead of style images. */
  usesBuiltinStyles() {
    const field = this.fields.get("builtin_styles");
    return Boolean(field && this.applies(field) && field.input.value.trim());
  }

  /** The images to send with the chosen engine: the photo and styles it takes, nothing else. */
  inputs() {
    const needs = this.needs();
    return { content: needs.photo === "no" ? null : this.content, styles: needs.styles ? [...this.styles] : [] };
  }

  /** Whether one submit starts several paintings (a latent model: one per seed). */
  makesMany() {
    return !this.remixOf && this.needs().latent;
  }

  /** How many paintings to start: 1, or the "how many" box for a latent model (1 to MAX_COUNT). */
  count() {
    if (!this.makesMany()) return 1;
    const text = this.$("count-input").value.trim();
    const n = text === "" ? 1 : Number(text);
    if (!Number.isInteger(n) || n < 1 || n > MAX_COUNT) throw new Error(`How many: enter a whole number from 1 to ${MAX_COUNT}.`);
    return n;
  }

  /** Show the pickers, the model's help, "how many" and the button's word for what the engine takes. */
  showMode() {
    const needs = this.needs();
    const model = this.model();
    const modelField = this.fields.get("model");
    if (modelField && this.engine() === "model") {
      const models = this.models;
      modelField.help.textContent = !models ? "Asking Studio for its models…"
        : !models.known ? `Studio cannot list its models now${models.reason ? `: ${models.reason}` : ""}.`
        : model ? model.description || KIND_HELP[model.kind] || ""
        : "An operator adds models by putting their files in Studio's models folder (STUDIO_MODELS_DIR).";
    }
    this.$("content-drop").hidden = needs.photo === "no";
    this.$("style-drop").hidden = !needs.styles;
    const pickers = this.$("pickers");
    pickers.classList.toggle("single", needs.photo === "no" || !needs.styles);
    pickers.hidden = Boolean(this.remixOf) || (needs.photo === "no" && !needs.styles);
    this.$("content-drop").querySelector(".drop-hint").textContent = needs.photo === "may"
      ? "A photo, if the model repaints one: drop it here or click to choose"
      : "Drop a photo here or click to choose";
    this.$("count-field").hidden = !this.makesMany();
    const blend = this.fields.get("style_blend"); // set aside while ready-made styles are chosen
    if (blend) blend.element.hidden = !this.applies(blend) || this.setAside(blend);
    this.$("advanced").hidden = ![...this.$("advanced-fields").children].some((element) => !element.hidden);
    this.showBuiltins();
    const button = this.$("paint-button");
    if (!button.classList.contains("working")) button.textContent = this.buttonText();
    this.root.dispatchEvent(new Event("inputs-changed")); // for the estimate beside Paint
  }

  buttonText() {
    if (this.remixOf) return "Paint remix";
    return this.makesMany() ? "Generate" : "Paint";
  }

  /** The values of the fields that apply to the chosen engine; throws an Error with a readable message for a bad one. */
  params() {
    const params = {};
    for (const [name, field] of this.fields) if (this.applies(field) && !this.setAside(field)) params[name] = field.get();
    return params;
  }

  /** Fill the fields from `params`; fields it does not name get their defaults. */
  setParams(params) {
    for (const [name, field] of this.fields) field.set(name in params ? params[name] : field.schema.default);
    this.showEngineFields();
  }

  wirePickers() {
    const content = this.$("content-input");
    const style = this.$("style-input");
    content.addEventListener("change", () => {
      if (content.files.length) this.setContent(content.files[0]);
      content.value = "";
    });
    style.addEventListener("change", () => {
      this.addStyles([...style.files]);
      style.value = "";
    });
    for (const [zone, take] of [[this.$("content-drop"), (files) => this.setContent(files[0])],
      [this.$("style-drop"), (files) => this.addStyles(files)]]) {
      zone.addEventListener("dragover", (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      });
      zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
      zone.addEventListener("drop", (event) => {
        event.preventDefault();
        zone.classList.remove("dragging");
        const files = [...event.dataTransfer.files].filter((f) => f.type.startsWith("image/"));
        if (files.length) take(files);
      });
    }
  }

  setContent(file) {
    this.content = file;
    this.renderThumbs();
  }

  addStyles(files) {
    this.styles.push(...files.filter((f) => f.type === "" || f.type.startsWith("image/")));
    this.renderThumbs();
  }

  renderThumbs() {
    const thumb = (file, onRemove) => {
      const box = document.createElement("span");
      box.className = "thumb";
      const img = document.createElement("img");
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      img.onload = () => URL.revokeObjectURL(img.src);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "thumb-remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${file.name}`);
      remove.addEventListener("click", (event) => {
        event.preventDefault();
        onRemove();
        this.renderThumbs();
      });
      box.append(img, remove);
      return box;
    };
    this.$("content-thumbs").replaceChildren(...(this.content ? [thumb(this.content, () => { this.content = null; })] : []));
    this.$("style-thumbs").replaceChildren(...this.styles.map((file, i) => thumb(file, () => this.styles.splice(i, 1))));
    this.$("content-drop").classList.toggle("filled", Boolean(this.content));
    this.$("style-drop").classList.toggle("filled", this.styles.length > 0);
    this.root.dispatchEvent(new Event("inputs-changed")); // for the estimate beside Paint
  }

  /** Prefill from `painting` and paint again with its images (the remix endpoint). */
  startRemix(painting, title) {
    this.remixOf = painting;
    this.setParams(painting.params || {});
    this.$("remix-name").textContent = title;
    const hasPhoto = painting.content_image != null;
    const hasStyles = painting.styles.length > 0;
    this.$("remix-reused").textContent = hasPhoto && hasStyles ? "its photo and styles are reused"
      : hasPhoto ? "its photo is reused" : "it was painted from a seed";
    const images = [painting.content_image, ...painting.styles.map((s) => s.image_id)].filter((id) => id != null);
    this.$("remix-thumbs").replaceChildren(...images.map((id) => {
      const img = document.createElement("img");
      img.src = imageUrl(id);
      img.alt = "";
      img.className = "thumb-img";
      return img;
    }));
    this.$("remix-banner").hidden = false;
    this.showMode();
    this.root.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  stopRemix() {
    this.remixOf = null;
    this.$("remix-banner").hidden = true;
    this.showMode();
  }

  /** Disable the button while requests are under way; `text` (e.g. "Generating 2 of 3…") says what. */
  busy(on, text = null) {
    const button = this.$("paint-button");
    button.disabled = on;
    button.classList.toggle("working", on);
    button.textContent = on && text ? text : this.buttonText();
  }
}

/** A promise that the image at `url` has loaded (and is cached for the buttons that show it). */
function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the thumbnails did not load"));
    image.src = url;
  });
}
