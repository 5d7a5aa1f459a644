// One painting: the live image, iteration x / n with elapsed time and ETA, the loss curve, the
// parameters used, and its actions. Loss points are keyed by iteration, so a snapshot reloaded
// after a reconnect merges with what the WebSocket already delivered without duplicates.
// A painting of one step (fast engine, generator model) has no iterations and no loss: it says how
// it was made instead ("Fast engine · 0.4 s"), and a latent model's painting has no photo. A painting
// of the fast engine's ready-made styles shows them as their thumbnails, and its parameters by number.
// While a Gatys painting is queued or paints, its owner may change its loss weights (weights.js); the
// chart marks each change at the iteration it took effect, and the parameters list their history.

import { imageUrl } from "./api.js";
import { chosenBuiltins, describeBuiltins, equalBlend, showBuiltinTile } from "./builtins.js";
import { LatestImage } from "./image-loader.js";
import { drawLossChart } from "./loss-chart.js";
import { FINISHED, STATUS_TEXT, duration, fraction, madeWith, oneStep, seconds, title, tookSeconds } from "./format.js";
import { WeightsPanel, changeMarks, describeChange } from "./weights.js";
import { passAt, passMarks, workDone } from "./passes.js";

/** A thumbnail of the inputs block: `content` (an image, or a ready-made style's tile) over its caption. */
function figure(content, label, className = "input-thumb") {
  const element = document.createElement("figure");
  element.className = className;
  const caption = document.createElement("figcaption");
  caption.textContent = label;
  element.append(content, caption);
  return element;
}

export const DRAFT_TEXT = "Draft (fast engine) — refining…";

export class PaintingView {
  /** @param {object} options  loadStyles(): a promise of GET /api/styles's answer (the ready-made styles' strip) */
  constructor(root, actions, { loadStyles } = {}) {
    this.root = root;
    this.actions = actions; // {cancel, remix, remove, close, weights(painting, weights) -> a promise}
    this.loadStyles = loadStyles;
    this.builtins = null; // a promise of GET /api/styles's answer, kept once it knows the strip
    this.$ = (id) => root.querySelector(`#${id}`);
    this.image = new LatestImage(this.$("live-image"));
    this.painting = null;
    this.points = new Map(); // iteration -> {iteration, loss, elapsed_s}
    this.$("viewer-close").addEventListener("click", () => actions.close());
    this.$("cancel-button").addEventListener("click", () => actions.cancel(this.painting));
    this.$("remix-button").addEventListener("click", () => actions.remix(this.painting));
    this.$("delete-button").addEventListener("click", () => actions.remove(this.painting));
    this.weights = new WeightsPanel(this.$("weights-form"), (weights) => actions.weights(this.painting, weights));
    window.addEventListener("resize", () => this.painting && this.drawChart());
  }

  get id() {
    return this.painting && this.painting.id;
  }

  /** Show `painting` (from GET /api/paintings/{id}); merge its progress with the points already seen. */
  open(painting) {
    if (this.id !== painting.id) {
      this.points.clear();
      this.image.clear();
    }
    this.painting = { ...painting };
    for (const point of painting.progress || []) this.points.set(point.iteration, point);
    this.root.hidden = false;
    this.renderStatic();
    this.render();
  }

  close() {
    this.painting = null;
    this.points.clear();
    this.image.clear();
    this.root.hidden = true;
  }

  /** Apply the latest summary of the open painting (from an event or the list). */
  update(summary) {
    if (!this.painting || summary.id !== this.id) return;
    const params = this.painting.params;
    Object.assign(this.painting, summary);
    if (summary.params && JSON.stringify(summary.params) !== JSON.stringify(params)) this.renderParams();
    this.render();
  }

  addPoint(point) {
    if (!this.painting) return;
    this.points.set(point.iteration, point);
  }

  renderStatic() {
    const p = this.painting;
    this.$("viewer-title").textContent = title(p);
    this.renderParams();
    const inputs = [
      ...(p.content_image != null ? [[p.content_image, "Photo"]] : []),
      ...p.styles.map((s, i) => [s.image_id, `Style ${i + 1} (weight ${s.weight})`]),
    ];
    const builtins = chosenBuiltins(p.params && p.params.builtin_styles);
    const equal = equalBlend(builtins);
    const tiles = builtins.map(({ index, weight }) => {
      const label = `Ready-made style ${index + 1}${equal ? "" : ` (weight ${weight})`}`;
      const tile = document.createElement("div");
      tile.className = "builtin-input-tile";
      tile.setAttribute("role", "img");
      tile.setAttribute("aria-label", label);
      return { index, tile, figure: figure(tile, label, "input-thumb builtin-input") };
    });
    this.$("viewer-inputs-block").hidden = !inputs.length && !tiles.length; // a latent model paints from a seed alone
    this.$("viewer-inputs-title").textContent = p.styles.length || tiles.length ? "Photo and styles" : "Photo";
    this.$("viewer-inputs").replaceChildren(...inputs.map(([id, label]) => {
      const img = document.createElement("img");
      img.src = imageUrl(id);
      img.alt = label;
      return figure(img, label);
    }), ...tiles.map((t) => t.figure));
    if (tiles.length) this.showBuiltinTiles(p.id, tiles);
  }

  /** The parameters the painting has now (its latest weights among them). */
  renderParams() {
    const p = this.painting;
    const params = this.$("viewer-params");
    params.replaceChildren();
    for (const [name, value] of Object.entries(p.params || {})) {
      const dt = document.createElement("dt");
      dt.textContent = name.replace(/_/g, " ");
      const dd = document.createElement("dd");
      dd.textContent = name === "builtin_styles" && Array.isArray(value) ? describeBuiltins(value)
        : value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
      params.append(dt, dd);
    }
  }

  /** The history of weight changes, oldest first, under the parameters (hidden when there is none). */
  renderWeightHistory() {
    const p = this.painting;
    const changes = p.weight_changes || [];
    const list = this.$("viewer-weight-history");
    this.$("viewer-weight-history-block").hidden = !changes.length;
    const key = JSON.stringify([changes, p.status]);
    if (list.dataset.key === key) return; // render() runs at every point: rebuild only what changed
    list.dataset.key = key;
    let before = null; // the first change shows all three weights, each later one what it changed
    list.replaceChildren(...changes.map((change) => {
      const item = document.createElement("li");
      item.textContent = describeChange(change, before, FINISHED.has(p.status));
      item.dataset.applied = String(change.iteration != null);
      before = change.weights;
      return item;
    }));
  }

  /** Paint the ready-made styles' tiles from their strip, once GET /api/styles has answered (asked once,
   * and again on a later painting if it could not tell); without it they keep their captions. */
  showBuiltinTiles(id, tiles) {
    if (!this.loadStyles) return;
    if (!this.builtins) {
      this.builtins = this.loadStyles().then((answer) => {
        if (!answer.known || !answer.sheet) this.builtins = null;
        return answer;
      }, (error) => {
        this.builtins = null;
        return { known: false, reason: error.message };
      });
    }
    this.builtins.then((answer) => {
      if (this.id !== id || !answer.known || !answer.sheet) return;
      for (const { index, tile } of tiles) showBuiltinTile(tile, answer, index);
    });
  }

  render() {
    const p = this.painting;
    if (!p) return;
    const points = [...this.points.values()].sort((a, b) => a.iteration - b.iteration);
    const last = points[points.length - 1];
    const n = p.iterations || p.params.iterations;
    const iteration = Math.max(p.iteration || 0, last ? last.iteration : 0);
    const status = this.$("viewer-status");
    status.textContent = STATUS_TEXT[p.status] || p.status;
    status.dataset.status = p.status;
    this.root.dataset.status = p.status;

    const percent = Math.round(fraction({ ...p, iteration }) * 100);
    this.$("viewer-progress-fill").style.width = `${percent}%`;
    this.$("viewer-progress").setAttribute("aria-valuenow", String(percent));
    const single = oneStep(p);
    const label = this.$("viewer-iteration");
    if (single) {
      const took = p.status === "done" ? tookSeconds(p) : null;
      label.textContent = took != null ? `${madeWith(p)} · ${seconds(took)}` : madeWith(p);
      label.title = took != null ? "From the request to the result, waiting for its turn included" : "";
    } else {
      label.textContent = `Iteration ${iteration} / ${n}`;
      label.title = "";
    }
    const elapsed = last ? last.elapsed_s : null;
    this.$("viewer-elapsed").textContent = elapsed != null && !single ? `Elapsed ${duration(elapsed)}` : "";
    let eta = "";
    if (p.status === "running" && last && last.iteration > 0 && elapsed != null) {
      // Coarse passes are cheap: the time left follows the work left, not the iterations left.
      const done = (p.params.engine || "gatys") === "gatys" ? workDone(p.params, last.iteration) : last.iteration / n;
      if (done > 0) eta = `About ${duration((elapsed * (1 - done)) / done)} left`;
    } else if (movedOff(p)) {
      eta = "Its painting server is gone: it carries on on another, from its latest preview";
    } else if (p.status === "queued") {
      eta = "Waiting for its turn";
    } else if (p.status === "waiting_for_studio") {
      eta = "The painting server is unreachable; it will resume by itself";
    }
    this.$("viewer-eta").textContent = eta;

    const error = this.$("viewer-error");
    error.hidden = p.status !== "failed";
    error.textContent = p.status === "failed" ? `This painting failed: ${p.error || "unknown error"}` : "";

    const shown = p.result_image || p.preview_image || p.content_image;
    this.image.show(shown);
    this.$("live-label").textContent = this.liveLabel(p, iteration, shown);
    this.$("live-label").hidden = !this.$("live-label").textContent;
    const download = this.$("download-link");
    download.hidden = !p.result_image;
    if (p.result_image) {
      download.href = imageUrl(p.result_image);
      download.download = `deep-painting-${p.id.slice(0, 8)}.png`;
    }
    // Only the browser that made a painting may change it (`mine`, from the API); others just look.
    const mine = p.mine === true;
    this.$("cancel-button").hidden = !mine || FINISHED.has(p.status);
    this.$("remix-button").hidden = !mine;
    this.$("delete-button").hidden = !mine;
    const gatys = (p.params.engine || "gatys") === "gatys";
    this.weights.show(p, mine && gatys && !FINISHED.has(p.status));
    this.renderWeightHistory();
    this.drawChart(points);
  }

  /** The words over the image: the draft being refined, or what is coming while there is nothing to show. */
  liveLabel(p, iteration, shown) {
    if (p.status === "failed" || p.status === "cancelled" || p.result_image) return "";
    const draft = p.params.init === "draft" && p.preview_image
      && (p.preview_image === p.draft_preview || (p.draft_preview === undefined && iteration === 0));
    if (draft) return DRAFT_TEXT;
    const pass = p.params.coarse_passes && p.preview_image ? passAt(p.params, iteration) : null;
    if (pass && pass.size < p.params.size) return `Coarse pass: painted at ${pass.size} px, shown enlarged`;
    // Queued or waiting for Studio: the line beside the image says so already.
    return !shown && p.status === "running" ? "Painting…" : "";
  }

  drawChart(points = [...this.points.values()].sort((a, b) => a.iteration - b.iteration)) {
    const p = this.painting;
    const canvas = this.$("loss-chart");
    const n = p.iterations || p.params.iterations;
    // A one-step painting has no loss curve: no empty chart for it.
    const losses = points.some((point) => point.loss && Number.isFinite(point.loss.total));
    canvas.hidden = !losses && (n <= 1 || oneStep(p));
    const marks = [...passMarks(p.params), ...changeMarks(p.weight_changes)];
    if (!canvas.hidden) drawLossChart(canvas, points, n, marks);
  }
}

// Gallery took it off a Studio gone for good (gallery/dispatcher.py says "Studio X is gone; ..."), to paint on another.
function movedOff(p) {
  return (p.status === "queued" || p.status === "waiting_for_studio") && /^Studio .* is gone;/.test(p.error || "");
}
