// A training's loss curves on a <canvas>: one line per network (generator, discriminator, cycle,
// identity, or whatever Studio names), against the step. loss-chart.js draws a painting's four
// fixed terms on a log scale; GAN losses hover around a level and may touch 0, so this one is linear.

const KNOWN = {
  generator: "#c2410c",
  discriminator: "#2563eb",
  cycle: "#0f9d58",
  identity: "#7c3aed",
};
const MORE = ["#db2777", "#0891b2", "#854d0e", "#4b5563"];

/** The colour of network `name` (the `index`-th of the chart's names). */
export function colourOf(name, index) {
  return KNOWN[name] || MORE[index % MORE.length];
}

/** The network names in `points` ([{step, losses: {name: value}}]), in the order they first appear. */
export function networks(points) {
  const names = [];
  for (const point of points) {
    for (const name of Object.keys(point.losses || {})) if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** Draw `points` (sorted by step) for a run of `steps`. */
export function drawTrainingChart(canvas, points, steps) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `${width < 420 ? 11 : 12}px system-ui, sans-serif`;

  const names = networks(points);
  canvas.dataset.series = names.join(" "); // what is drawn, for people and tests alike
  canvas.dataset.points = String(points.length);
  const values = points.flatMap((p) => names.map((n) => p.losses && p.losses[n])).filter((v) => Number.isFinite(v));
  const pad = { left: 48, right: 12, top: 26, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  if (!values.length) {
    ctx.fillStyle = "#6b7280";
    ctx.fillText("The loss curves appear with the first steps.", pad.left, pad.top + plotH / 2);
    return;
  }
  let lo = Math.min(0, ...values);
  let hi = Math.max(...values);
  if (hi === lo) hi = lo + 1;
  hi += (hi - lo) * 0.05;
  const maxX = Math.max(steps || 0, ...points.map((p) => p.step), 1);
  const x = (step) => pad.left + (step / maxX) * plotW;
  const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * plotH;

  // Grid: four lines, labelled with their values.
  ctx.strokeStyle = "#e5e7eb";
  ctx.fillStyle = "#6b7280";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const v = lo + ((hi - lo) * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, yy);
    ctx.lineTo(pad.left + plotW, yy);
    ctx.stroke();
    ctx.fillText(v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2), 6, yy + 4);
  }
  ctx.fillText("0", pad.left - 4, height - 6);
  const maxLabel = `${maxX}`;
  ctx.fillText(maxLabel, pad.left + plotW - ctx.measureText(maxLabel).width, height - 6);
  ctx.fillText("step", pad.left + plotW / 2 - 12, height - 6);

  let legendX = pad.left;
  names.forEach((name, index) => {
    const colour = colourOf(name, index);
    const pts = points.filter((p) => p.losses && Number.isFinite(p.losses[name]));
    ctx.fillStyle = colour;
    ctx.fillRect(legendX, 8, 10, 10);
    ctx.fillStyle = "#374151";
    ctx.fillText(name, legendX + 14, 17);
    legendX += ctx.measureText(name).width + (width < 420 ? 20 : 30);
    if (!pts.length) return;
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.8;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p.step), y(p.losses[name])) : ctx.moveTo(x(p.step), y(p.losses[name]))));
    ctx.stroke();
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(x(pts[0].step), y(pts[0].losses[name]), 2.5, 0, 2 * Math.PI);
      ctx.fillStyle = colour;
      ctx.fill();
    }
  });
}
