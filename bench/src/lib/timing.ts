import { median } from '../results';

/**
 * Runs every variant `rounds` times, interleaved (a, b, c, a, b, c, ...), so slow drifts
 * of a noisy machine hit all variants alike. Each call returns the number of steps it
 * ran; the result is the median milliseconds per step of each variant.
 */
export async function interleave(variants: Record<string, () => Promise<number> | number>, rounds: number, warmup = 1): Promise<Record<string, { msPerStep: number; samples: number[] }>> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (const [name, run] of Object.entries(variants)) {
      const t0 = performance.now();
      const steps = await run();
      const ms = (performance.now() - t0) / steps;
      if (r >= warmup) samples[name].push(ms);
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, { msPerStep: median(v), samples: v }]));
}
