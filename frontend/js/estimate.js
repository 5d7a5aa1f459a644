// "About 1 min 40 s on this Studio" beside Paint: Studio's estimate for what the form says now, asked
// for (debounced) whenever a field, the photo or the styles change. Quiet when there is nothing to say:
// Studio away or still timing itself, or a field being typed that is not valid yet.

import { duration, seconds } from "./format.js";

const DEBOUNCE_MS = 350;
const DEFAULT_PHOTO = { width: 4, height: 3 }; // no photo chosen yet: the shape of most photos
const MAX_STYLES = 8; // more are refused at Paint anyway; the estimate hardly depends on it

const sizes = new WeakMap(); // File -> its size as shown (EXIF orientation applied)

/** The size of an image as the page shows it: {width, height}, or null when it cannot be read. */
function shownSize(source) {
  if (source instanceof Blob && sizes.has(source)) return Promise.resolve(sizes.get(source));
  return new Promise((resolve) => {
    const url = source instanceof Blob ? URL.createObjectURL(source) : source;
    const image = new Image();
    const done = (size) => {
      if (source instanceof Blob) {
        URL.revokeObjectURL(url);
        if (size) sizes.set(source, size);
      }
      resolve(size);
    };
    image.onload = () => done({ width: image.naturalWidth, height: image.naturalHeight });
    image.onerror = () => done(null);
    image.src = url;
  });
}

function bytes(n) {
  return n >= 1e8 ? `${(n / 1e9).toFixed(1)} GB` : `${Math.round(n / 1e6)} MB`;
}

/** What to say for an answer of POST /api/estimate: {text, warn}, text empty when there is nothing to say. */
export function estimateText(answer) {
  if (!answer || !answer.known) return { text: "", warn: false };
  if (answer.fits === false) {
    const fits = answer.largest_size ? `: at most ${answer.largest_size} px on this Studio` : "";
    return { text: `Too large: it needs about ${bytes(answer.peak_bytes)} of memory${fits}`, warn: true };
  }
  if (answer.seconds == null) return { text: "", warn: false };
  const time = answer.seconds < 10 ? seconds(answer.seconds) : duration(answer.seconds);
  return { text: `about ${time} on this Studio`, warn: false };
}

export class EstimateLine {
  /**
   * @param {HTMLElement} element  where the sentence goes
   * @param {object} form  the PaintForm (params(), inputs(), remixOf, root)
   * @param {function} ask  POST /api/estimate: a promise of its answer
   */
  constructor(element, form, ask) {
    this.element = element;
    this.form = form;
    this.ask = ask;
    this.timer = null;
    this.asked = 0; // a later question's answer wins; an earlier one arriving late is dropped
    for (const type of ["input", "change", "inputs-changed"]) {
      form.root.addEventListener(type, () => this.soon());
    }
  }

  /** Ask again once the person has stopped changing things for a moment. */
  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), DEBOUNCE_MS);
  }

  async refresh() {
    const question = ++this.asked;
    let answer = null;
    try {
      answer = await this.ask(await this.body());
    } catch {
      answer = null; // invalid fields (the form says why at Paint) or Gallery away: no estimate
    }
    if (question !== this.asked) return;
    const { text, warn } = estimateText(answer);
    this.element.textContent = text;
    this.element.classList.toggle("warn", warn);
    this.element.hidden = !text;
  }

  async body() {
    const form = this.form;
    const params = form.params(); // throws for a field that is not valid yet
    const { content, styles } = form.inputs();
    let photo = null;
    if (form.remixOf) {
      const id = form.remixOf.content_image;
      photo = id == null ? null : await shownSize(`/api/images/${encodeURIComponent(id)}`);
    } else if (content) {
      photo = await shownSize(content);
    }
    const latent = form.needs().photo === "no";
    const size = latent ? {} : photo || DEFAULT_PHOTO;
    const count = form.remixOf ? form.remixOf.styles.length : styles.length;
    return { params, ...size, styles: Math.min(MAX_STYLES, Math.max(1, count)) };
  }
}
