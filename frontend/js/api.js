// The Gallery HTTP API, with errors turned into sentences a person can read.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The text of a FastAPI error body: {"detail": "..."} or {"detail": [{loc, msg}, ...]}. */
function describe(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail.map((d) => {
      const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body" && p !== "query").join(".") : "";
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  if (status === 413) return "That file is too large for the server.";
  if (status === 404) return "That painting no longer exists.";
  if (status >= 500) return "The server had a problem. Please try again in a moment.";
  return `The request failed (HTTP ${status}).`;
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError("Cannot reach the Gallery server. Check your connection; the page keeps trying.", 0);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(describe(body, response.status), response.status);
  return body;
}

export const imageUrl = (id) => `/api/images/${encodeURIComponent(id)}`;

/**
 * POST a form with XMLHttpRequest, which (unlike fetch) reports the upload's progress: a training's
 * collections may take minutes to send. `onProgress(fraction)` runs as the body goes out (1: all sent,
 * Gallery is checking the images). Errors are ApiErrors, as `request` gives.
 */
function upload(path, form, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total) onProgress(event.loaded / event.total);
    };
    xhr.upload.onload = () => onProgress(1);
    xhr.onerror = () => reject(new ApiError("Cannot reach the Gallery server. Check your connection and try again.", 0));
    xhr.onload = () => {
      let body = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(describe(body, xhr.status), xhr.status));
    };
    xhr.send(form);
  });
}

export const api = {
  schema: () => request("/api/params/schema"),
  list: (limit = 100, offset = 0) => request(`/api/paintings?limit=${limit}&offset=${offset}`),
  get: (id) => request(`/api/paintings/${encodeURIComponent(id)}`),
  /** The generator models Studio serves: {known, models: [{name, kind, ok, problem, ...}], reason?}. */
  models: () => request("/api/models"),
  /** The fast engine's ready-made styles: {known, count, tile: [w, h], sheet: a PNG strip's URL | null, reason?}. */
  styles: () => request("/api/styles"),
  /** Studio's estimate before Paint ({params, width, height, styles}): {known, seconds, peak_bytes, fits, largest_size, ...}. */
  estimate: (body) => request("/api/estimate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  }),
  /** A new painting. `content` may be null (a latent model paints from a seed) and `styles` empty
   * (no model takes styles): the parts left out are not sent at all. */
  create(content, styles, params) {
    const form = new FormData();
    if (content) form.append("content", content, content.name || "content.png");
    for (const style of styles || []) form.append("style", style, style.name || "style.png");
    form.append("params", JSON.stringify(params));
    return request("/api/paintings", { method: "POST", body: form });
  },
  remix: (id, params) => request(`/api/paintings/${encodeURIComponent(id)}/remix`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ params }),
  }),
  cancel: (id) => request(`/api/paintings/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
  /** New loss weights ({content_weight, style_weight, tv_weight}, any of them) while it is queued or paints. */
  weights: (id, weights) => request(`/api/paintings/${encodeURIComponent(id)}/weights`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(weights),
  }),
  remove: (id) => request(`/api/paintings/${encodeURIComponent(id)}`, { method: "DELETE" }),

  /** The training parameters' schema with Gallery's caps; `x-collections`: what each kind trains on. */
  trainingSchema: () => request("/api/training-schema"),
  trainings: (limit = 100) => request(`/api/trainings?limit=${limit}`),
  training: (id) => request(`/api/trainings/${encodeURIComponent(id)}`),
  /** A new training: `collections` maps each collection's name to its files (one archive, or images). */
  createTraining(params, collections, onProgress) {
    const form = new FormData();
    form.append("params", JSON.stringify(params));
    for (const [name, files] of Object.entries(collections)) {
      for (const file of files) form.append(name, file, file.name || `${name}.png`);
    }
    return upload("/api/trainings", form, onProgress);
  },
  cancelTraining: (id) => request(`/api/trainings/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
  removeTraining: (id) => request(`/api/trainings/${encodeURIComponent(id)}`, { method: "DELETE" }),
};
