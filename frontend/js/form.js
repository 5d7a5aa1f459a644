// The "New painting" form: image pickers with thumbnails, and the parameter fields built from
// the API's JSON schema (essentials first, the rest under "Advanced", each with its description).

import { imageUrl } from "./api.js";

export const ESSENTIALS = ["engine", "size", "iterations", "strength", "style_weight", "preserve_colors", "model"];

const LABELS = {
  tv_weight: "Smoothness (TV weight)",
  preview_every: "Preview every",
  preview_seconds: "Preview at least every (s)",
  preserve_colors: "Keep the photo's colours",
  strength: "Style strength",
};

function labelFor(name, schema) {
  return LABELS[name] || schema.title || name.replace(/_/g, " ");
}

function kindOf(schema) {
  if (schema.enum) return "enum";
  if (schema.type === "boolean") return "boolean";
  if (schema.type === "integer" || schema.type === "number") return schema.type;
  if (schema.type === "object") return "json";
  if (schema.anyOf && schema.anyOf.some((s) => s.type === "array")) return "list";
  return "text";
}

/** One field: its element, and how to read and write its value. */
function buildField(name, schema) {
  const kind = kindOf(schema);
  const id = `param-${name}`;
  const wrap = document.createElement("div");
  wrap.className = `field field-${kind}`;
  wrap.dataset.param = name;
  let input;
  if (kind === "enum") {
    input = document.createElement("select");
    for (const option of schema.enum) input.add(new Option(option, option));
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
    name, schema, kind, input, element: wrap,
    set(value) {
      if (kind === "boolean") input.checked = Boolean(value);
      else if (kind === "json") input.value = value == null ? "" : JSON.stringify(value, null, 1);
      else if (kind === "list") input.value = Array.isArray(value) ? value.join(", ") : "";
      else input.value = value == null ? "" : String(value);
    },
    get() {
      const label = labelFor(name, schema);
      if (kind === "boolean") return input.checked;
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
  constructor(root, { onSubmit }) {
    this.root = root;
    this.onSubmit = onSubmit;
    this.fields = new Map();
    this.content = null;
    this.styles = [];
    this.remixOf = null;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.wirePickers();
    this.$("remix-stop").addEventListener("click", () => this.stopRemix());
    this.$("reset-button").addEventListener("click", () => this.setParams({}));
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
    for (const field of this.fields.values()) field.element.hidden = !this.applies(field);
    this.root.dataset.engine = this.engine();
  }

  /** The values of the fields that apply to the chosen engine; throws an Error with a readable message for a bad one. */
  params() {
    const params = {};
    for (const [name, field] of this.fields) if (this.applies(field)) params[name] = field.get();
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
  }

  /** Prefill from `painting` and paint again with its images (the remix endpoint). */
  startRemix(painting, title) {
    this.remixOf = painting;
    this.setParams(painting.params || {});
    this.$("remix-name").textContent = title;
    const images = [painting.content_image, ...painting.styles.map((s) => s.image_id)];
    this.$("remix-thumbs").replaceChildren(...images.map((id) => {
      const img = document.createElement("img");
      img.src = imageUrl(id);
      img.alt = "";
      img.className = "thumb-img";
      return img;
    }));
    this.$("remix-banner").hidden = false;
    this.$("pickers").hidden = true;
    this.$("paint-button").textContent = "Paint remix";
    this.root.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  stopRemix() {
    this.remixOf = null;
    this.$("remix-banner").hidden = true;
    this.$("pickers").hidden = false;
    this.$("paint-button").textContent = "Paint";
  }

  busy(on) {
    const button = this.$("paint-button");
    button.disabled = on;
    button.classList.toggle("working", on);
  }
}
