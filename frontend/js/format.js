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
