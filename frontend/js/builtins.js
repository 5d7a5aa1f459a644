// The fast engine's ready-made styles, shared by the form's picker and the viewer: their thumbnails
// (each a tile of one strip, GET /api/styles's `sheet`) and the words for a choice of them
// (`builtin_styles`: one weight per style, 0 for those not chosen).

/** Show ready-made style `index` (from 0) on `element`: its tile of the strip, as the background. */
export function showBuiltinTile(element, answer, index, count = answer.count) {
  const [width, height] = answer.tile || [4, 3];
  element.style.setProperty("--tile-ratio", `${width} / ${height}`);
  element.style.backgroundImage = `url("${answer.sheet}")`;
  // The strip is `count` tiles wide: scaled to count × the element, tile i sits at i / (count - 1) of the way.
  element.style.backgroundSize = `${count * 100}% 100%`;
  element.style.backgroundPosition = `${count > 1 ? (index / (count - 1)) * 100 : 0}% 0`;
}

/** The chosen ones of `weights`: [{index (from 0), weight}] for each weighing more than 0. */
export function chosenBuiltins(weights) {
  return (Array.isArray(weights) ? weights : []).flatMap((weight, index) => (weight > 0 ? [{ index, weight }] : []));
}

/** Whether the chosen ones all weigh the same: an equal blend (a remix may bring other weights). */
export function equalBlend(chosen) {
  return new Set(chosen.map((c) => c.weight)).size <= 1;
}

/** `builtin_styles` in words: "style 5", "styles 3, 12 (equal blend)", "styles 3 (weight 2), 12 (weight 1)". */
export function describeBuiltins(weights) {
  const chosen = chosenBuiltins(weights);
  if (!chosen.length) return "none";
  const equal = equalBlend(chosen);
  const list = chosen.map((c) => (equal ? `${c.index + 1}` : `${c.index + 1} (weight ${c.weight})`)).join(", ");
  return chosen.length === 1 ? `style ${list}` : `styles ${list}${equal ? " (equal blend)" : ""}`;
}
