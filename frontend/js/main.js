// Wires the page together: the form, the gallery, the open painting, and the live event stream.
// Truth comes from HTTP snapshots (on load and on every WebSocket (re)connect); events keep it fresh.

import { api } from "./api.js";
import { PaintForm } from "./form.js";
import { FINISHED, title } from "./format.js";
import { GalleryView } from "./gallery.js";
import { EventSocket } from "./socket.js";
import { PaintingView } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const paintings = new Map(); // id -> the latest summary we know

function showError(message) {
  $("alert-text").textContent = message;
  $("alert").hidden = false;
}
function clearError() {
  $("alert").hidden = true;
}
$("alert-close").addEventListener("click", clearError);

const gallery = new GalleryView($("cards"), {
  onOpen: (id) => { location.hash = `#painting/${id}`; },
  count: $("gallery-count"),
  empty: $("gallery-empty"),
});

const viewer = new PaintingView($("viewer"), {
  close: () => { history.pushState(null, "", location.pathname + location.search); route(); },
  async cancel(painting) {
    try {
      merge(await api.cancel(painting.id));
    } catch (error) {
      showError(`Could not cancel: ${error.message}`);
    }
  },
  remix(painting) {
    form.startRemix(painting, title(painting));
  },
  async remove(painting) {
    if (!confirm(`Delete ${title(painting)}? This cannot be undone.`)) return;
    try {
      await api.remove(painting.id);
      forget(painting.id);
    } catch (error) {
      showError(`Could not delete: ${error.message}`);
    }
  },
});

const form = new PaintForm($("paint-form"), {
  async onSubmit(f) {
    clearError();
    let params;
    try {
      params = f.params();
    } catch (error) {
      showError(error.message);
      return;
    }
    if (!f.remixOf) {
      if (!f.content) return showError("Choose a photo to paint.");
      if (!f.styles.length) return showError("Choose at least one style image.");
    }
    f.busy(true);
    try {
      const painting = f.remixOf ? await api.remix(f.remixOf.id, params) : await api.create(f.content, f.styles, params);
      merge(painting);
      if (f.remixOf) f.stopRemix();
      location.hash = `#painting/${painting.id}`;
    } catch (error) {
      showError(`Could not start the painting: ${error.message}`);
    } finally {
      f.busy(false);
    }
  },
});

/** Take a newer summary of a painting; a late snapshot never takes a finished painting back. */
function merge(summary) {
  const known = paintings.get(summary.id);
  let next = { ...(known || {}), ...summary };
  if (known && FINISHED.has(known.status) && !FINISHED.has(summary.status)) next = { ...summary, ...known };
  if (known && !FINISHED.has(next.status)) next.iteration = Math.max(known.iteration || 0, summary.iteration || 0);
  paintings.set(summary.id, next);
  gallery.upsert(next);
  viewer.update(next);
  return next;
}

function forget(id) {
  paintings.delete(id);
  gallery.remove(id);
  if (viewer.id === id) viewer.actions.close();
}

function onEvent(event) {
  const known = paintings.get(event.id);
  switch (event.type) {
    case "painting.created":
      merge(event.painting);
      break;
    case "painting.progress": {
      if (!known) return; // not loaded yet: the next snapshot has it
      if (viewer.id === event.id) {
        viewer.addPoint({ iteration: event.iteration, loss: event.loss, elapsed_s: event.elapsed_s });
      }
      const update = { id: event.id, iteration: event.iteration, status: FINISHED.has(known.status) ? known.status : "running", error: null };
      if (event.iterations) update.iterations = event.iterations;
      if (event.preview_image) update.preview_image = event.preview_image;
      merge(update);
      break;
    }
    case "painting.done":
      if (known) merge({ id: event.id, status: "done", result_image: event.result_image, iteration: known.iterations || known.iteration });
      break;
    case "painting.failed":
      if (known) merge({ id: event.id, status: "failed", error: event.error });
      break;
    case "painting.cancelled":
      if (known) merge({ id: event.id, status: "cancelled" });
      break;
    case "painting.waiting":
      if (known && !FINISHED.has(known.status)) merge({ id: event.id, status: "waiting_for_studio", error: event.reason });
      break;
    case "painting.deleted":
      forget(event.id);
      break;
    default:
      break; // an event from a newer Gallery
  }
}

async function loadSnapshot() {
  try {
    const page = await api.list(100);
    for (const item of page.items) merge(item);
    const ids = new Set(page.items.map((p) => p.id));
    for (const id of [...paintings.keys()]) {
      if (!ids.has(id) && page.total <= page.items.length) forget(id);
    }
    gallery.reset(page.items.map((p) => paintings.get(p.id)), page.total);
    await route();
  } catch (error) {
    showError(`Could not load the gallery: ${error.message}`);
  }
}

async function route() {
  const match = /^#painting\/([\w-]+)$/.exec(location.hash);
  if (!match) {
    viewer.close();
    gallery.select(null);
    return;
  }
  const id = match[1];
  try {
    const painting = await api.get(id);
    viewer.open(painting);
    merge(painting);
    gallery.select(id);
  } catch (error) {
    if (error.status === 404) {
      forget(id);
      history.replaceState(null, "", location.pathname);
      showError("That painting no longer exists.");
    } else {
      showError(`Could not open the painting: ${error.message}`);
    }
  }
}

window.addEventListener("hashchange", () => {
  route();
  if (location.hash) $("viewer").scrollIntoView({ behavior: "smooth", block: "start" });
});

const connection = $("connection");
const STATE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };
const socket = new EventSocket({
  onEvent,
  onOpen: loadSnapshot,
  onState(state) {
    connection.dataset.state = state;
    connection.textContent = STATE_TEXT[state] || state;
  },
});

async function start() {
  try {
    form.build(await api.schema());
  } catch (error) {
    showError(`Could not load the painting settings: ${error.message}`);
  }
  socket.connect();
}

start();
