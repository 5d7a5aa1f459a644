// Words and numbers for people.

export const STATUS_TEXT = {
  queued: "Queued",
  waiting_for_studio: "Waiting for Studio",
  running: "Painting",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const FINISHED = new Set(["done", "failed", "cancelled"]);

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

export function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** Fraction done, 0..1. */
export function fraction(painting) {
  if (painting.status === "done") return 1;
  const n = painting.iterations || (painting.params && painting.params.iterations) || 0;
  return n ? Math.min(1, (painting.iteration || 0) / n) : 0;
}

export function title(painting) {
  return `Painting ${painting.id.slice(0, 8)}`;
}

/** Seconds with one decimal below ten ("0.4 s"), else as `duration` does. */
export function seconds(value) {
  if (value == null || !Number.isFinite(value)) return "–";
  if (value < 0.05) return "under 0.1 s"; // not "0.0 s"
  return value < 10 ? `${value.toFixed(1)} s` : duration(value);
}

/** The engine a painting ran with ("gatys" when its params do not say). */
export function engineOf(painting) {
  return (painting.params && painting.params.engine) || "gatys";
}

/** Whether a painting is made in one step (fast engine, generator model): no iterations to count. */
export function oneStep(painting) {
  return engineOf(painting) !== "gatys";
}

/** How a one-step painting was made, for labels: "Fast engine", "Model dots · seed 3", "Model tint". */
export function madeWith(painting) {
  const params = painting.params || {};
  if (engineOf(painting) === "fast") return "Fast engine";
  if (engineOf(painting) === "model") {
    // A model that repaints a photo ignores the seed; one that paints from a seed alone has no photo.
    const seed = painting.content_image == null && params.seed != null ? ` · seed ${params.seed}` : "";
    return `Model ${params.model}${seed}`;
  }
  return `${painting.iterations || params.iterations} iterations`;
}

/** Seconds from the request to the result of a finished painting (waiting for its turn included);
 * null until its snapshot says when it ended. */
export function tookSeconds(painting) {
  const start = Date.parse(painting.created_at);
  const end = Date.parse(painting.updated_at);
  return Number.isFinite(start) && Number.isFinite(end) && end > start ? (end - start) / 1000 : null;
}
