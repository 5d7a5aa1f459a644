// The loss curve on a <canvas>: total and each term against the iteration, log-scaled, with a dashed
// vertical mark where the loss weights were changed while it painted (the objective changed there).

export const SERIES = [
  { key: "total", label: "Total", colour: "#1f2937" },
  { key: "content", label: "Content", colour: "#2563eb" },
  { key: "style", label: "Style", colour: "#d9480f" },
  { key: "tv", label: "Smoothness", colour: "#0f9d58" },
];

export const MARK_COLOUR = "#7c3aed";

/** Draw `points` ([{iteration, loss: {total, content, style, tv}}], sorted) for a run of `iterations`,
 * and `marks` ([{iteration, label}]): the weight changes, each at the first iteration under them. */
export function drawLossChart(canvas, points, iterations, marks = []) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `${width < 420 ? 11 : 12}px system-ui, sans-serif`;

  const values = points.flatMap((p) => SERIES.map((s) => p.loss && p.loss[s.key])).filter((v) => v > 0 && isFinite(v));
  const pad = { left: 52, right: 12, top: 26, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  if (!values.length) {
    ctx.fillStyle = "#6b7280";
    ctx.fillText("The loss curve appears with the first iterations.", pad.left, pad.top + plotH / 2);
    return;
  }
  let lo = Math.floor(Math.log10(Math.min(...values)));
  let hi = Math.ceil(Math.log10(Math.max(...values)));
  if (hi === lo) { hi += 1; lo -= 1; }
  const maxX = Math.max(iterations || 0, ...points.map((p) => p.iteration), 1);
  const x = (it) => pad.left + (it / maxX) * plotW;
  const y = (v) => pad.top + (1 - (Math.log10(v) - lo) / (hi - lo)) * plotH;

  // Grid: one line per decade.
  ctx.strokeStyle = "#e5e7eb";
  ctx.fillStyle = "#6b7280";
  ctx.lineWidth = 1;
  const step = Math.max(1, Math.ceil((hi - lo) / 6));
  for (let e = lo; e <= hi; e += step) {
    const yy = Math.round(y(10 ** e)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, yy);
    ctx.lineTo(pad.left + plotW, yy);
    ctx.stroke();
    ctx.fillText(`1e${e}`, 6, yy + 4);
  }
  ctx.fillText("0", pad.left - 4, height - 6);
  const maxLabel = `${maxX}`;
  ctx.fillText(maxLabel, pad.left + plotW - ctx.measureText(maxLabel).width, height - 6);
  ctx.fillText("iteration", pad.left + plotW / 2 - 24, height - 6);

  // The weight changes, under the curves: a dashed line at each, its label beside the top.
  ctx.save();
  ctx.strokeStyle = MARK_COLOUR;
  ctx.fillStyle = MARK_COLOUR;
  ctx.lineWidth = 1.2;
  ctx.setLineDash([4, 3]);
  for (const mark of marks) {
    if (!(mark.iteration > 0) || mark.iteration > maxX) continue;
    const xx = Math.round(x(mark.iteration)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, pad.top);
    ctx.lineTo(xx, pad.top + plotH);
    ctx.stroke();
    const text = mark.label || "";
    const room = pad.left + plotW - xx - 4;
    if (text && room > 30) ctx.fillText(text.length * 6 > room ? `${text.slice(0, Math.floor(room / 6))}…` : text, xx + 3, pad.top + 11);
  }
  ctx.restore();
  canvas.dataset.marks = marks.map((m) => m.iteration).join(" "); // what is drawn, for people and tests alike

  let legendX = pad.left;
  for (const s of SERIES) {
    const pts = points.filter((p) => p.loss && p.loss[s.key] > 0 && isFinite(p.loss[s.key]));
    ctx.fillStyle = s.colour;
    ctx.fillRect(legendX, 8, 10, 10);
    ctx.fillStyle = "#374151";
    ctx.fillText(s.label, legendX + 14, 17);
    legendX += ctx.measureText(s.label).width + (width < 420 ? 20 : 30);
    if (!pts.length) continue;
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = s.key === "total" ? 2.2 : 1.5;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p.iteration), y(p.loss[s.key])) : ctx.moveTo(x(p.iteration), y(p.loss[s.key]))));
    ctx.stroke();
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(x(pts[0].iteration), y(pts[0].loss[s.key]), 2.5, 0, 2 * Math.PI);
      ctx.fillStyle = s.colour;
      ctx.fill();
    }
  }
}
