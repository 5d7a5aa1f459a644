// The gallery: one card per painting, newest first, each with its thumbnail, status and progress.

import { LatestImage } from "./image-loader.js";
import { FINISHED, STATUS_TEXT, fraction, madeWith, oneStep, title, when } from "./format.js";

export class GalleryView {
  constructor(list, { onOpen, count, empty }) {
    this.list = list;
    this.onOpen = onOpen;
    this.count = count;
    this.empty = empty;
    this.cards = new Map(); // id -> {element, image: LatestImage, parts}
  }

  /** Replace everything with `paintings` (newest first). */
  reset(paintings, total) {
    const keep = new Set(paintings.map((p) => p.id));
    for (const id of [...this.cards.keys()]) if (!keep.has(id)) this.remove(id);
    for (const painting of [...paintings].reverse()) this.upsert(painting);
    this.total = total;
    this.refreshCount();
  }

  upsert(painting) {
    let card = this.cards.get(painting.id);
    if (!card) {
      card = this.create(painting);
      this.cards.set(painting.id, card);
      this.insertSorted(card, painting);
      this.total = Math.max(this.total || 0, this.cards.size);
      this.refreshCount();
    }
    const { parts } = card;
    card.element.dataset.status = painting.status;
    parts.badge.textContent = STATUS_TEXT[painting.status] || painting.status;
    parts.badge.dataset.status = painting.status;
    const percent = Math.round(fraction(painting) * 100);
    parts.fill.style.width = `${percent}%`;
    parts.bar.setAttribute("aria-valuenow", String(percent));
    parts.bar.hidden = FINISHED.has(painting.status) && painting.status !== "done";
    const n = painting.iterations || painting.params.iterations;
    parts.meta.textContent = painting.status === "failed" ? (painting.error || "Failed")
      : painting.status === "waiting_for_studio" ? "Waiting for the painting server…"
      : painting.status === "done" ? `${madeWith(painting)} · ${when(painting.created_at)}`
      : oneStep(painting) ? `${madeWith(painting)} · ${painting.status === "queued" ? "waiting for its turn" : "painting…"}`
      : `Iteration ${painting.iteration || 0} / ${n}`;
    parts.meta.title = parts.meta.textContent;
    // A latent model's painting has no photo: until its result comes, the frame stays empty.
    card.image.show(painting.result_image || painting.preview_image || painting.content_image);
  }

  create(painting) {
    const element = document.createElement("li");
    element.className = "card";
    element.dataset.id = painting.id;
    element.dataset.created = painting.created_at;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "card-open";
    button.setAttribute("aria-label", `Open ${title(painting)}`);
    const img = document.createElement("img");
    img.alt = "";
    img.loading = "lazy";
    const badge = document.createElement("span");
    badge.className = "badge";
    const bar = document.createElement("div");
    bar.className = "progress small";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("div");
    fill.className = "progress-fill";
    bar.append(fill);
    const meta = document.createElement("span");
    meta.className = "card-meta";
    const frame = document.createElement("span");
    frame.className = "card-frame";
    frame.append(img, badge);
    button.append(frame, bar, meta);
    button.addEventListener("click", () => this.onOpen(painting.id));
    element.append(button);
    return { element, image: new LatestImage(img), parts: { badge, bar, fill, meta } };
  }

  insertSorted(card, painting) {
    const later = [...this.list.children].find((li) => li.dataset.created < painting.created_at);
    this.list.insertBefore(card.element, later || null);
  }

  remove(id) {
    const card = this.cards.get(id);
    if (!card) return;
    card.element.remove();
    this.cards.delete(id);
    this.total = Math.max(0, (this.total || 1) - 1);
    this.refreshCount();
  }

  select(id) {
    for (const [cardId, card] of this.cards) card.element.classList.toggle("selected", cardId === id);
  }

  refreshCount() {
    const total = Math.max(this.total || 0, this.cards.size);
    this.count.textContent = total ? `${total} painting${total === 1 ? "" : "s"}` : "";
    this.empty.hidden = total > 0;
  }
}
