// Wires the page together: the form, the gallery, the open painting, the Train section, and the
// live event stream. Truth comes from HTTP snapshots (on load and on every WebSocket (re)connect);
// events keep it fresh. The location's hash says what is shown: "#painting/<id>" (a painting open),
// "#train" (the Train section), "#training/<id>" (a training open there), nothing (painting).

import { api } from "./api.js";
import { EstimateLine } from "./estimate.js";
import { PaintForm } from "./form.js";
import { FINISHED, title } from "./format.js";
import { GalleryView } from "./gallery.js";
import { EventSocket } from "./socket.js";
import { TrainPage } from "./train.js";
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
  async weights(painting, weights) {
    merge(await api.weights(painting.id, weights)); // errors: the weights panel says them
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
}, { loadStyles: api.styles });

const SEEDS = 2 ** 32; // seeds run 0 .. 2**32 - 1 (the schema's range); seed + i wraps round
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * `create()`, retried while Gallery answers 429 and some of `started` (this batch's paintings) are
 * unfinished: a browser may have only a few paintings under way, so a batch of eight waits for room.
 */
async function createWhenThereIsRoom(create, started) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      return await create();
    } catch (error) {
      const waiting = started.some((id) => paintings.has(id) && !FINISHED.has(paintings.get(id).status));
      if (error.status !== 429 || !waiting || Date.now() > deadline) throw error;
      await sleep(300);
    }
  }
}

const form = new PaintForm($("paint-form"), {
  loadModels: api.models,
  loadStyles: api.styles,
  async onSubmit(f) {
    clearError();
    let params;
    let count;
    try {
      params = f.params();
      count = f.count();
    } catch (error) {
      showError(error.message);
      return;
    }
    const { content, styles } = f.inputs();
    if (f.remixOf && f.builtinsOffered() && !f.usesBuiltinStyles()) {
      return showError("This painting was made with ready-made styles: pick at least one to remix it.");
    }
    if (!f.remixOf) {
      const needs = f.needs();
      if (needs.photo === "need" && !content) return showError("Choose a photo to paint.");
      if (needs.styles && !styles.length) {
        return showError(f.engine() === "fast" ? "Choose at least one style image or ready-made style." : "Choose at least one style image.");
      }
    }
    f.busy(true);
    const started = [];
    try {
      if (f.remixOf) {
        const painting = await api.remix(f.remixOf.id, params);
        merge(painting);
        f.stopRemix();
        location.hash = `#painting/${painting.id}`;
        return;
      }
      // Several pictures of a latent model: one painting per seed, seed, seed + 1, ...
      for (let i = 0; i < count; i += 1) {
        if (count > 1) f.busy(true, `Generating ${i + 1} of ${count}…`);
        const asked = i === 0 ? params : { ...params, seed: ((params.seed || 0) + i) % SEEDS };
        const painting = await createWhenThereIsRoom(() => api.create(content, styles, asked), started);
        merge(painting);
        started.push(painting.id);
        if (i === 0) location.hash = `#painting/${painting.id}`;
      }
    } catch (error) {
      showError(started.length
        ? `Started ${started.length} of ${count}; could not start the rest: ${error.message}`
        : `Could not start the painting: ${error.message}`);
    } finally {
      f.busy(false);
    }
  },
});

const trainPage = new TrainPage($("train-section"), api, {
  close: () => { history.pushState(null, "", "#train"); route(); },
  showError,
  /** "Paint with it" (a CycleGAN repaints a photo) and "Generate" (a DCGAN paints from a seed): the
   * painting form with engine `model` and this training's model chosen (the list asked again: it is new). */
  paintWith(training) {
    if (form.remixOf) form.stopRemix();
    form.setParams({ engine: "model", model: training.model });
    form.refreshModels();
    history.pushState(null, "", location.pathname + location.search);
    route();
    $("paint-form").scrollIntoView({ behavior: "smooth", block: "start" });
  },
});

/** Show the Paint or the Train section, and mark its tab. */
function showSection(name) {
  $("paint-section").hidden = name !== "paint";
  $("train-section").hidden = name !== "train";
  for (const [tab, section] of [["tab-paint", "paint"], ["tab-train", "train"]]) {
    if (section === name) $(tab).setAttribute("aria-current", "page");
    else $(tab).removeAttribute("aria-current");
  }
}

/** Take a newer summary of a painting; a late snapshot never takes a finished painting back. */
function merge(summary) {
  const known = paintings.get(summary.id);
  let next = { ...(known || {}), ...summary };
  if (known && FINISHED.has(known.status) && !FINISHED.has(summary.status)) next = { ...summary, ...known };
  if (known && !FINISHED.has(next.status)) {
    next.iteration = Math.max(known.iteration || 0, summary.iteration || 0);
    // A snapshot taken before the latest preview (the draft comes at once) must not take it back.
    if (!summary.preview_image && known.preview_image) next.preview_image = known.preview_image;
  }
  paintings.set(summary.id, next);
  gallery.upsert(next);
  viewer.update(next);
  return next;
}

/** Take the painting's snapshot again (an event carries only what changed); quiet when it fails. */
async function refresh(id) {
  try {
    merge(await api.get(id));
  } catch {
    // the next snapshot (reconnect, reopen) brings it
  }
}

function forget(id) {
  paintings.delete(id);
  gallery.remove(id);
  if (viewer.id === id) viewer.actions.close();
}

function onEvent(event) {
  if (typeof event.type === "string" && event.type.startsWith("training.")) {
    trainPage.onEvent(event);
    return;
  }
  const known = paintings.get(event.id);
  // Relayed from another Gallery process without its larger fields: read the painting itself.
  if (event.partial) {
    if (known) refresh(event.id);
    return;
  }
  switch (event.type) {
    case "painting.created":
      merge(event.painting);
      break;
    case "painting.progress": {
      if (!known) return; // not loaded yet: the next snapshot has it
      if (viewer.id === event.id) {
        viewer.addPoint({ iteration: event.iteration, loss: event.loss, elapsed_s: event.elapsed_s });
      }
      // The first point under new weights: the change now has its iteration (and its mark on the chart).
      if (event.weights && (known.weight_changes || []).some((c) => c.iteration == null)) refresh(event.id);
      const update = { id: event.id, iteration: event.iteration, status: FINISHED.has(known.status) ? known.status : "running", error: null };
      if (event.iterations) update.iterations = event.iterations;
      if (event.preview_image) update.preview_image = event.preview_image;
      // Iteration 0 with a preview: the fast engine's draft, shown at once while Gatys refines it.
      if (event.preview_image && event.iteration === 0) update.draft_preview = event.preview_image;
      merge(update);
      break;
    }
    case "painting.done":
      if (known) merge({ id: event.id, status: "done", result_image: event.result_image, iteration: known.iterations || known.iteration });
      if (known && viewer.id === event.id) refresh(event.id); // its end time: "Fast engine · 0.4 s"
      break;
    case "painting.failed":
      if (known) merge({ id: event.id, status: "failed", error: event.error });
      break;
    case "painting.cancelled":
      if (known) merge({ id: event.id, status: "cancelled" });
      break;
    case "painting.weights":
      if (known) merge({ id: event.id, params: event.params, weight_changes: event.weight_changes });
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
  try {
    await trainPage.load();
  } catch (error) {
    showError(`Could not load the trainings: ${error.message}`);
  }
}

async function routeTraining(id) {
  viewer.close();
  gallery.select(null);
  if (!id) {
    trainPage.close();
    return;
  }
  try {
    await trainPage.open(id);
  } catch (error) {
    if (error.status === 404) {
      trainPage.forget(id);
      history.replaceState(null, "", "#train");
      showError("That training no longer exists.");
    } else {
      showError(`Could not open the training: ${error.message}`);
    }
  }
}

async function route() {
  const training = /^#train(?:ing\/([\w-]+))?$/.exec(location.hash);
  showSection(training ? "train" : "paint");
  if (training) return routeTraining(training[1]);
  const match = /^#painting\/([\w-]+)$/.exec(location.hash);
  if (!match) {
    viewer.close();
    gallery.select(null);
    return;
  }
  const id = match[1];
  try {
    const painting = await api.get(id);
    viewer.open({ ...painting, ...merge(painting) }); // with what events brought while it loaded
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
  const open = location.hash.startsWith("#painting/") ? "viewer" : location.hash.startsWith("#training/") ? "training-view" : null;
  if (open) $(open).scrollIntoView({ behavior: "smooth", block: "start" });
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
    form.refreshModels(); // in the background: the model choice is ready when someone picks it
    new EstimateLine($("paint-estimate"), form, api.estimate).soon();
  } catch (error) {
    showError(`Could not load the painting settings: ${error.message}`);
  }
  try {
    trainPage.build(await api.trainingSchema());
  } catch (error) {
    showError(`Could not load the training settings: ${error.message}`);
  }
  socket.connect();
}

start();
