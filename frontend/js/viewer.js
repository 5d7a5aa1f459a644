// One painting: the live image, iteration x / n with elapsed time and ETA, the loss curve, the
// parameters used, and its actions. Loss points are keyed by iteration, so a snapshot reloaded
// after a reconnect merges with what the WebSocket already delivered without duplicates.

import { imageUrl } from "./api.js";
import { LatestImage } from "./image-loader.js";
import { drawLossChart } from "./loss-chart.js";
import { FINISHED, STATUS_TEXT, duration, fraction, title } from "./format.js";

export class PaintingView {
  constructor(root, actions) {
    this.root = root;
    this.actions = actions; // {cancel, remix, remove, close}
    this.$ = (id) => root.querySelector(`#${id}`);
    this.image = new LatestImage(this.$("live-image"));
    this.painting = null;
    this.points = new Map(); // iteration -> {iteration, loss, elapsed_s}
    this.$("viewer-close").addEventListener("click", () => actions.close());
    this.$("cancel-button").addEventListener("click", () => actions.cancel(this.painting));
    this.$("remix-button").addEventListener("click", () => actions.remix(this.painting));
    this.$("delete-button").addEventListener("click", () => actions.remove(this.painting));
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
    Object.assign(this.painting, summary);
    this.render();
  }

  addPoint(point) {
    if (!this.painting) return;
    this.points.set(point.iteration, point);
  }

  renderStatic() {
    const p = this.painting;
    this.$("viewer-title").textContent = title(p);
    const params = this.$("viewer-params");
    params.replaceChildren();
    for (const [name, value] of Object.entries(p.params || {})) {
      const dt = document.createElement("dt");
      dt.textContent = name.replace(/_/g, " ");
      const dd = document.createElement("dd");
      dd.textContent = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
      params.append(dt, dd);
    }
    const inputs = [[p.content_image, "Photo"], ...p.styles.map((s, i) => [s.image_id, `Style ${i + 1} (weight ${s.weight})`])];
    this.$("viewer-inputs").replaceChildren(...inputs.map(([id, label]) => {
      const figure = document.createElement("figure");
      figure.className = "input-thumb";
      const img = document.createElement("img");
      img.src = imageUrl(id);
      img.alt = label;
      const caption = document.createElement("figcaption");
      caption.textContent = label;
      figure.append(img, caption);
      return figure;
    }));
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
    this.$("viewer-iteration").textContent = `Iteration ${iteration} / ${n}`;
    const elapsed = last ? last.elapsed_s : null;
    this.$("viewer-elapsed").textContent = elapsed != null ? `Elapsed ${duration(elapsed)}` : "";
    let eta = "";
    if (p.status === "running" && last && last.iteration > 0 && elapsed != null) {
      eta = `About ${duration((elapsed / last.iteration) * Math.max(0, n - last.iteration))} left`;
    } else if (p.status === "queued") {
      eta = "Waiting for its turn";
    } else if (p.status === "waiting_for_studio") {
      eta = "The painting server is unreachable; it will resume by itself";
    }
    this.$("viewer-eta").textContent = eta;

    const error = this.$("viewer-error");
    error.hidden = p.status !== "failed";
    error.textContent = p.status === "failed" ? `This painting failed: ${p.error || "unknown error"}` : "";

    this.image.show(p.result_image || p.preview_image || p.content_image);
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
    this.drawChart(points);
  }

  drawChart(points = [...this.points.values()].sort((a, b) => a.iteration - b.iteration)) {
    const p = this.painting;
    drawLossChart(this.$("loss-chart"), points, p.iterations || p.params.iterations);
  }
}
