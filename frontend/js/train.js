// The "Train" section: a form to train a CycleGAN (photos -> paintings) or a DCGAN (new images)
// on collections the person uploads, the list of trainings, and the one open: step / steps, seconds
// a step and time left, the loss curve of each network, the latest sample image, Cancel and Delete
// for the browser that started it, and once done "Paint with it" (a CycleGAN repaints a photo) or
// "Generate" (a DCGAN paints from a seed), which hand its model to the painting form.
// The form is built from GET /api/training-schema (each field's description and range; `x-kinds`
// says which kinds read it, `x-collections` what each kind is trained on). Truth comes from HTTP
// snapshots; the WebSocket's `training.*` events keep them fresh.

import { LatestImage } from "./image-loader.js";
import { FINISHED, duration, seconds } from "./format.js";
import { drawTrainingChart } from "./training-chart.js";

export const TRAINING_STATUS_TEXT = {
  queued: "Queued",
  waiting_for_studio: "Waiting for Studio",
  running: "Training",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

const KIND_LABELS = {
  cyclegan: "CycleGAN: photos → paintings",
  dcgan: "DCGAN: new images from a seed",
};
const KIND_SHORT = { cyclegan: "CycleGAN", dcgan: "DCGAN" };
const COLLECTION_LABELS = { photos: "Photos", paintings: "Paintings", images: "Images" };
const ESSENTIALS = ["steps", "image_size", "batch_size", "filters", "sample_every", "name"];
const LABELS = {
  steps: "Steps",
  image_size: "Image size (px)",
  batch_size: "Batch size",
  learning_rate: "Learning rate",
  beta1: "Adam beta1",
  cycle_weight: "Cycle weight",
  identity_weight: "Identity weight",
  latent_dim: "Seed length (latent size)",
  filters: "Filters",
  sample_every: "Sample every (steps)",
  checkpoint_every: "Checkpoint every (steps)",
  seed: "Random seed",
  name: "Model name",
};
const ARCHIVE = /\.(zip|tar|tgz|tbz2?|txz|gz|bz2|xz)$/i;
const MAX_THUMBS = 8;

const isArchive = (file) => ARCHIVE.test(file.name || "") || /zip|tar|gzip|bzip|xz/.test(file.type || "");
function size(bytes) {
  if (bytes < 1e6) return `${Math.max(1, Math.round(bytes / 1e3))} KB`;
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

/** The typed variant of a schema property ({type: "integer", minimum, ...}) and whether null is allowed. */
function typed(schema) {
  if (!schema.anyOf) return { type: schema, nullable: false };
  return { type: schema.anyOf.find((s) => s.type !== "null") || {}, nullable: schema.anyOf.some((s) => s.type === "null") };
}

/** One parameter field: its element, and how to read it (undefined: left to the kind's default). */
function buildField(name, schema) {
  const { type, nullable } = typed(schema);
  const numeric = type.type === "integer" || type.type === "number";
  const id = `train-param-${name}`;
  const wrap = document.createElement("div");
  wrap.className = "field";
  wrap.dataset.param = name;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = LABELS[name] || name.replace(/_/g, " ");
  const input = document.createElement("input");
  input.id = id;
  input.name = name;
  input.type = numeric ? "number" : "text";
  if (numeric) {
    if (type.minimum !== undefined) input.min = type.minimum;
    if (type.maximum !== undefined) input.max = type.maximum;
    input.step = type.type === "integer" ? "1" : "any";
    input.inputMode = type.type === "integer" ? "numeric" : "decimal";
  }
  if (nullable) input.placeholder = name === "name" ? "made from the kind and the training's id" : "the kind's own";
  const help = document.createElement("small");
  help.className = "help";
  help.id = `${id}-help`;
  const range = type.minimum !== undefined && type.maximum !== undefined ? ` (${type.minimum}–${type.maximum})` : "";
  help.textContent = (schema.description || "") + range;
  input.setAttribute("aria-describedby", help.id);
  wrap.append(label, input, help);
  const field = {
    name, schema, input, element: wrap,
    reset() {
      input.value = schema.default == null ? "" : String(schema.default);
    },
    get() {
      const text = input.value.trim();
      if (text === "") return undefined;
      if (!numeric) return text;
      const number = Number(text);
      const what = label.textContent;
      if (!Number.isFinite(number) || (type.type === "integer" && !Number.isInteger(number))) {
        throw new Error(`${what}: enter ${type.type === "integer" ? "a whole number" : "a number"}.`);
      }
      if (type.minimum !== undefined && number < type.minimum) throw new Error(`${what}: the smallest allowed is ${type.minimum}.`);
      if (type.maximum !== undefined && number > type.maximum) throw new Error(`${what}: the largest allowed is ${type.maximum}.`);
      return number;
    },
  };
  field.reset();
  return field;
}

/** A drop zone for one collection: an archive, or many images; it says what it holds. */
class CollectionPicker {
  constructor(name, minImages, onChange) {
    this.name = name;
    this.minImages = minImages;
    this.files = [];
    this.onChange = onChange;
    const id = `train-${name}-input`;
    const zone = document.createElement("label");
    zone.className = "drop collection";
    zone.id = `train-${name}-drop`;
    zone.htmlFor = id;
    zone.dataset.collection = name;
    const title = document.createElement("span");
    title.className = "drop-title";
    title.textContent = COLLECTION_LABELS[name] || name;
    const hint = document.createElement("span");
    hint.className = "drop-hint";
    hint.textContent = `An archive (zip, tar) or at least ${minImages} images: drop them here or click to choose`;
    const input = document.createElement("input");
    input.type = "file";
    input.id = id;
    input.multiple = true;
    input.accept = "image/*,.zip,.tar,.tgz,.gz,.bz2,.xz,application/zip,application/x-tar,application/gzip";
    this.summary = document.createElement("span");
    this.summary.className = "collection-summary";
    this.summary.setAttribute("role", "status");
    this.thumbs = document.createElement("span");
    this.thumbs.className = "thumbs";
    this.clear = document.createElement("button");
    this.clear.type = "button";
    this.clear.className = "link-button";
    this.clear.textContent = "Remove";
    this.clear.hidden = true;
    this.clear.addEventListener("click", (event) => {
      event.preventDefault();
      this.set([]);
    });
    zone.append(title, hint, input, this.summary, this.thumbs, this.clear);
    input.addEventListener("change", () => {
      this.set([...input.files]);
      input.value = "";
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (event.dataTransfer.files.length) this.set([...event.dataTransfer.files]);
    });
    this.element = zone;
    this.render();
  }

  set(files) {
    this.files = files;
    this.render();
    this.onChange();
  }

  render() {
    const files = this.files;
    const bytes = files.reduce((sum, f) => sum + f.size, 0);
    const archive = files.length === 1 && isArchive(files[0]);
    this.summary.textContent = !files.length ? ""
      : archive ? `An archive: ${files[0].name}, ${size(bytes)}`
      : `${files.length} image${files.length === 1 ? "" : "s"}, ${size(bytes)}`;
    this.element.classList.toggle("filled", files.length > 0);
    this.clear.hidden = !files.length;
    const images = archive ? [] : files.filter((f) => (f.type || "").startsWith("image/")).slice(0, MAX_THUMBS);
    this.thumbs.replaceChildren(...images.map((file) => {
      const img = document.createElement("img");
      img.className = "thumb-img small";
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      img.onload = () => URL.revokeObjectURL(img.src);
      return img;
    }));
  }

  /** Throws an Error a person can act on when this collection cannot be sent as it is. */
  check() {
    const label = COLLECTION_LABELS[this.name] || this.name;
    const files = this.files;
    if (!files.length) throw new Error(`${label}: choose an archive of them (zip, tar) or at least ${this.minImages} images.`);
    if (files.length > 1 && files.some(isArchive)) throw new Error(`${label}: give one archive, or the images themselves, not both.`);
    if (files.length > 1 && files.length < this.minImages) {
      throw new Error(`${label}: at least ${this.minImages} images are needed; ${files.length} are chosen.`);
    }
  }
}

export class TrainPage {
  /**
   * @param {HTMLElement} root  the Train section
   * @param {object} api  the Gallery API (api.js)
   * @param {object} hooks  paintWith(training): open the painting form with its model; open(id), close()
   */
  constructor(root, api, hooks) {
    this.root = root;
    this.api = api;
    this.hooks = hooks;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.schema = null;
    this.fields = new Map();
    this.pickers = new Map();
    this.trainings = new Map(); // id -> the latest we know
    this.open_ = null; // the training shown
    this.points = new Map(); // step -> {step, losses}
    this.sample = new LatestImage(this.$("training-sample"));
    this.$("train-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.$("train-kind").addEventListener("change", () => this.showKind());
    this.$("train-reset").addEventListener("click", () => this.resetFields());
    this.$("training-close").addEventListener("click", () => hooks.close());
    this.$("training-cancel").addEventListener("click", () => this.cancel());
    this.$("training-delete").addEventListener("click", () => this.remove());
    this.$("training-paint").addEventListener("click", () => hooks.paintWith(this.open_));
    this.$("training-generate").addEventListener("click", () => hooks.paintWith(this.open_));
    window.addEventListener("resize", () => this.open_ && this.drawChart());
  }

  get id() {
    return this.open_ && this.open_.id;
  }

  // --- the form -----------------------------------------------------------------------------

  build(schema) {
    this.schema = schema;
    const kind = this.$("train-kind");
    const property = schema.properties.kind;
    kind.replaceChildren(...property.enum.map((k) => new Option(KIND_LABELS[k] || k, k)));
    kind.value = property.default || property.enum[0];
    this.$("train-kind-help").textContent = property.description || "";
    this.fields.clear();
    for (const [name, prop] of Object.entries(schema.properties)) {
      if (name !== "kind") this.fields.set(name, buildField(name, prop));
    }
    this.showKind();
  }

  kind() {
    return this.$("train-kind").value;
  }

  resetFields() {
    for (const field of this.fields.values()) field.reset();
    this.showError("");
  }

  /** Show the drop zones and fields the chosen kind takes, keeping what was chosen for a collection both share. */
  showKind() {
    const kind = this.kind();
    const wanted = (this.schema["x-collections"] || {})[kind] || [];
    const pickers = new Map();
    for (const { name, min_images: minImages } of wanted) {
      pickers.set(name, this.pickers.get(name) || new CollectionPicker(name, minImages, () => this.showError("")));
    }
    this.pickers = pickers;
    const zone = this.$("train-pickers");
    zone.replaceChildren(...[...pickers.values()].map((p) => p.element));
    zone.classList.toggle("single", pickers.size === 1);
    const essentials = [];
    const advanced = [];
    for (const field of this.fields.values()) {
      const kinds = field.schema["x-kinds"];
      if (kinds && !kinds.includes(kind)) continue;
      (ESSENTIALS.includes(field.name) ? essentials : advanced).push(field.element);
    }
    this.$("train-essentials").replaceChildren(...essentials);
    this.$("train-advanced-fields").replaceChildren(...advanced);
    this.root.dataset.kind = kind;
  }

  /** The params to send: the kind, and each field of it that is filled in (the others: defaults). */
  params() {
    const kind = this.kind();
    const params = { kind };
    for (const field of this.fields.values()) {
      const kinds = field.schema["x-kinds"];
      if (kinds && !kinds.includes(kind)) continue;
      const value = field.get();
      if (value !== undefined) params[field.name] = value;
    }
    return params;
  }

  showError(message) {
    const box = this.$("train-error");
    box.textContent = message;
    box.hidden = !message;
  }

  busy(text) {
    const button = this.$("train-button");
    button.disabled = Boolean(text);
    button.classList.toggle("working", Boolean(text));
    button.textContent = text || "Train";
  }

  async submit() {
    this.showError("");
    let params;
    try {
      params = this.params();
      for (const picker of this.pickers.values()) picker.check();
    } catch (error) {
      this.showError(error.message);
      return;
    }
    const collections = Object.fromEntries([...this.pickers.values()].map((p) => [p.name, p.files]));
    this.busy("Uploading…");
    try {
      const training = await this.api.createTraining(params, collections, (sent) => {
        this.busy(sent < 1 ? `Uploading ${Math.floor(sent * 100)} %…` : "Checking the images…");
      });
      this.merge(training);
      location.hash = `#training/${training.id}`;
    } catch (error) {
      this.showError(`Could not start the training: ${error.message}`);
    } finally {
      this.busy("");
    }
  }

  // --- the list -----------------------------------------------------------------------------

  /** Take the list again (on load and on every WebSocket (re)connect). */
  async load() {
    const page = await this.api.trainings(100);
    const ids = new Set(page.items.map((t) => t.id));
    for (const id of [...this.trainings.keys()]) if (!ids.has(id)) this.trainings.delete(id);
    for (const item of page.items) this.merge(item, false);
    this.renderList();
    if (this.open_ && ids.has(this.open_.id)) this.refresh(this.open_.id);
  }

  /** Take a newer summary of a training; a late snapshot never takes an ended one back. */
  merge(summary, render = true) {
    const known = this.trainings.get(summary.id);
    let next = { ...(known || {}), ...summary };
    if (known && FINISHED.has(known.status) && !FINISHED.has(summary.status)) next = { ...summary, ...known };
    if (known && !FINISHED.has(next.status)) {
      next.step = Math.max(known.step || 0, summary.step || 0);
      if (!summary.sample_image && known.sample_image) next.sample_image = known.sample_image;
    }
    delete next.progress;
    this.trainings.set(summary.id, next);
    if (this.open_ && this.open_.id === summary.id) {
      Object.assign(this.open_, next);
      this.render();
    }
    if (render) this.renderList();
    return next;
  }

  forget(id) {
    this.trainings.delete(id);
    this.renderList();
    if (this.id === id) this.hooks.close();
  }

  async refresh(id) {
    try {
      const training = await this.api.training(id);
      for (const point of training.progress || []) this.points.set(point.step, point);
      this.merge(training);
    } catch {
      // the next snapshot brings it
    }
  }

  renderList() {
    const list = this.$("training-list");
    const items = [...this.trainings.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    this.$("trainings-empty").hidden = items.length > 0;
    this.$("trainings-count").textContent = items.length ? `${items.length}` : "";
    list.replaceChildren(...items.map((t) => {
      const item = document.createElement("li");
      item.className = "training-row";
      item.dataset.id = t.id;
      item.classList.toggle("selected", t.id === this.id);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "training-open";
      button.addEventListener("click", () => { location.hash = `#training/${t.id}`; });
      const name = document.createElement("span");
      name.className = "training-name";
      name.textContent = t.model;
      const kind = document.createElement("span");
      kind.className = "muted";
      kind.textContent = KIND_SHORT[t.kind] || t.kind;
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = t.status;
      badge.textContent = TRAINING_STATUS_TEXT[t.status] || t.status;
      const bar = document.createElement("span");
      bar.className = "progress small";
      const fill = document.createElement("span");
      fill.className = "progress-fill";
      fill.style.width = `${percent(t)}%`;
      bar.append(fill);
      bar.dataset.status = t.status;
      const steps = document.createElement("span");
      steps.className = "muted training-steps";
      steps.textContent = `Step ${t.step} / ${t.steps}`;
      button.append(name, kind, badge, bar, steps);
      item.append(button);
      return item;
    }));
  }

  // --- the one open -------------------------------------------------------------------------

  /** Show training `id` (fetched again: its loss curves). */
  async open(id) {
    const training = await this.api.training(id);
    if (this.id !== id) {
      this.points.clear();
      this.sample.clear();
    }
    for (const point of training.progress || []) this.points.set(point.step, point);
    this.open_ = { ...training };
    this.$("training-view").hidden = false;
    this.merge(training);
    this.render();
  }

  close() {
    this.open_ = null;
    this.points.clear();
    this.sample.clear();
    this.$("training-view").hidden = true;
    this.renderList();
  }

  render() {
    const t = this.open_;
    if (!t) return;
    this.$("training-title").textContent = `${t.model} · ${KIND_SHORT[t.kind] || t.kind}`;
    const status = this.$("training-status");
    status.textContent = TRAINING_STATUS_TEXT[t.status] || t.status;
    status.dataset.status = t.status;
    this.$("training-view").dataset.status = t.status;
    const done = percent(t);
    this.$("training-progress-fill").style.width = `${done}%`;
    this.$("training-progress").setAttribute("aria-valuenow", String(done));
    this.$("training-step").textContent = `Step ${t.step} / ${t.steps}`;
    const running = t.status === "running" && t.seconds_per_step != null;
    this.$("training-speed").textContent = t.seconds_per_step != null ? `${seconds(t.seconds_per_step)} a step` : "";
    const left = Math.max(0, t.steps - t.step) * (t.seconds_per_step || 0);
    this.$("training-left").textContent = running ? `About ${duration(left)} left`
      : t.status === "queued" ? "Waiting for its turn"
      : t.status === "waiting_for_studio" ? "The training server is unreachable; it will carry on by itself"
      : "";
    const counts = Object.entries(t.counts || {}).map(([name, n]) => `${n} ${name}`).join(" and ");
    this.$("training-counts").textContent = counts ? `Trained on ${counts}.` : "";

    const error = this.$("training-error");
    error.hidden = t.status !== "failed";
    error.textContent = t.status === "failed" ? `This training failed: ${t.error || "unknown error"}` : "";
    this.sample.show(t.sample_image);
    this.$("training-sample-label").textContent = !t.sample_image
      ? (FINISHED.has(t.status) ? "" : "The first sample comes after a few steps")
      : t.status === "done" ? "The trained model's sample"
      : t.sample_step ? `Sample at step ${t.sample_step}` : "Latest sample";
    this.$("training-sample-label").hidden = !this.$("training-sample-label").textContent;

    const mine = t.mine === true;
    this.$("training-cancel").hidden = !mine || FINISHED.has(t.status);
    this.$("training-delete").hidden = !mine;
    this.$("training-paint").hidden = !(t.status === "done" && t.kind === "cyclegan");
    this.$("training-generate").hidden = !(t.status === "done" && t.kind === "dcgan");
    this.$("training-model-note").textContent = t.status === "done"
      ? `Its model, “${t.model}”, is on the painting server now${mine ? "; deleting this training keeps it there" : ""}.`
      : "";
    this.renderParams();
    this.drawChart();
  }

  renderParams() {
    const list = this.$("training-params");
    const key = JSON.stringify(this.open_.params);
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren(...Object.entries(this.open_.params || {}).flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = LABELS[name] || name.replace(/_/g, " ");
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      return [dt, dd];
    }));
  }

  drawChart() {
    const points = [...this.points.values()].sort((a, b) => a.step - b.step);
    drawTrainingChart(this.$("training-chart"), points, this.open_.steps);
  }

  async cancel() {
    const t = this.open_;
    try {
      this.merge(await this.api.cancelTraining(t.id));
    } catch (error) {
      this.hooks.showError(`Could not cancel: ${error.message}`);
    }
  }

  async remove() {
    const t = this.open_;
    const keeps = t.status === "done" ? ` Its model “${t.model}” stays on the painting server.` : "";
    if (!confirm(`Delete the training ${t.model}? Its curves and samples go.${keeps}`)) return;
    try {
      await this.api.removeTraining(t.id);
      this.forget(t.id);
    } catch (error) {
      this.hooks.showError(`Could not delete: ${error.message}`);
    }
  }

  // --- events -------------------------------------------------------------------------------

  onEvent(event) {
    const known = this.trainings.get(event.id);
    if (event.partial) {
      if (known) this.refresh(event.id);
      return;
    }
    switch (event.type) {
      case "training.created":
        this.merge(event.training);
        break;
      case "training.running":
        if (known) this.merge({ id: event.id, status: "running", error: null });
        break;
      case "training.waiting":
        if (known && !FINISHED.has(known.status)) this.merge({ id: event.id, status: "waiting_for_studio", error: event.reason });
        break;
      case "training.progress": {
        if (!known) return;
        if (this.id === event.id) this.points.set(event.step, { step: event.step, losses: event.losses, seconds_per_step: event.seconds_per_step });
        const update = {
          id: event.id,
          step: event.step,
          steps: event.steps,
          losses: event.losses,
          seconds_per_step: event.seconds_per_step,
          status: FINISHED.has(known.status) ? known.status : "running",
          error: null,
        };
        if (event.sample_image) Object.assign(update, { sample_image: event.sample_image, sample_step: event.step });
        if (event.checkpoint_step != null) update.checkpoint_step = event.checkpoint_step;
        this.merge(update);
        break;
      }
      case "training.done":
        if (known) {
          const update = { id: event.id, status: "done", model: event.model || known.model, step: known.steps };
          if (event.sample_image) update.sample_image = event.sample_image;
          this.merge(update);
        }
        break;
      case "training.failed":
        if (known) this.merge({ id: event.id, status: "failed", error: event.error });
        break;
      case "training.cancelled":
        if (known) this.merge({ id: event.id, status: "cancelled" });
        break;
      case "training.deleted":
        this.forget(event.id);
        break;
      default:
        break; // from a newer Gallery
    }
  }
}

function percent(t) {
  if (t.status === "done") return 100;
  return t.steps ? Math.min(100, Math.round(((t.step || 0) / t.steps) * 100)) : 0;
}
