// Coarse-to-fine: a Gatys painting may paint smaller passes before its full size (params
// coarse_passes, coarse_iterations). The same rule as painting.params.Params.passes(): pass k of n
// paints at size / 2**k, one under MIN_SIZE px is left out, and the full size comes last.

export const MIN_SIZE = 32;

/** [{size, iterations, first, last}] in order, coarsest first; `first`/`last` are 1-based iterations. */
export function passes(params) {
  const out = [];
  const n = (params && params.coarse_passes) || 0;
  for (let k = n; k >= 1; k -= 1) {
    const size = Math.round(params.size / 2 ** k);
    if (size >= MIN_SIZE) out.push({ size, iterations: params.coarse_iterations || 0 });
  }
  out.push({ size: params.size, iterations: params.iterations });
  let done = 0;
  for (const pass of out) {
    pass.first = done + 1;
    pass.last = done + pass.iterations;
    done = pass.last;
  }
  return out;
}

/** The pass an iteration belongs to (the last one past the end). */
export function passAt(params, iteration) {
  const all = passes(params);
  return all.find((pass) => iteration <= pass.last) || all[all.length - 1];
}

/** Chart marks where each larger pass starts: [{iteration, label}]. */
export function passMarks(params) {
  const all = passes(params);
  return all.slice(1).map((pass) => ({ iteration: pass.first, label: `${pass.size} px` }));
}

/** The share of the run's work done after `iteration`: an iteration costs its pass's pixel count. */
export function workDone(params, iteration) {
  const all = passes(params);
  const cost = (pass) => (pass.size / params.size) ** 2;
  const total = all.reduce((sum, pass) => sum + pass.iterations * cost(pass), 0);
  let done = 0;
  for (const pass of all) done += Math.max(0, Math.min(iteration, pass.last) - pass.first + 1) * cost(pass);
  return total > 0 ? done / total : 0;
}
