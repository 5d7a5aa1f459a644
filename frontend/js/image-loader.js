// Shows the newest of a stream of image ids in one <img>, with at most one fetch in flight:
// ids that arrive while an image loads are coalesced, and only the latest is loaded next.

import { imageUrl } from "./api.js";

export class LatestImage {
  constructor(img) {
    this.img = img;
    this.shown = null;   // the id on screen
    this.loading = null; // the id being fetched
    this.pending = null; // the newest id waiting for the fetch in flight to end
  }

  show(id) {
    if (!id || id === this.shown || id === this.loading) {
      this.pending = null; // a newer id made any pending one stale; this one is already on its way
      return;
    }
    if (this.loading) {
      this.pending = id;
      return;
    }
    this.load(id);
  }

  load(id) {
    this.loading = id;
    const probe = new Image();
    const finish = (ok) => {
      if (ok) {
        this.img.src = probe.src; // cached (immutable), so no second fetch
        this.shown = id;
      }
      this.loading = null;
      const next = this.pending;
      this.pending = null;
      if (next && next !== this.shown) this.load(next);
    };
    probe.onload = () => finish(true);
    probe.onerror = () => finish(false);
    probe.src = imageUrl(id);
  }

  clear() {
    this.pending = null;
    this.shown = null;
    this.img.removeAttribute("src");
  }
}
