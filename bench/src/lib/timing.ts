import { median, round } from '../results';

/**
 * Runs every variant `rounds` times, interleaved, the order reversed every other round
 * (a, b, c, c, b, a, ...) so that neither slow drifts of a noisy machine nor a variant's
 * place in the round favour one variant. Each call returns the number of steps it ran;
 * the result is the median milliseconds per step of each variant and its per-round
 * samples (sample r of every variant comes from the same round: ratios can be paired),
 * in wall-clock time and in CPU time of the process (all its threads: with one wasm
 * thread, the step's own work, which a busy machine inflates much less).
 */
export async function interleave(variants: Record<string, () => Promise<number> | number>, rounds: number, warmup = 1): Promise<Record<string, { msPerStep: number; samples: number[]; cpuSamples: number[] }>> {
  const names = Object.keys(variants);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  const cpuSamples: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (const name of r % 2 === 0 ? names : [...names].reverse()) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const steps = await variants[name]();
      const ms = (performance.now() - t0) / steps;
      const cpu = process.cpuUsage(c0);
      if (r >= warmup) {
        samples[name].push(ms);
        cpuSamples[name].push((cpu.user + cpu.system) / 1000 / steps);
      }
    }
  }
  return Object.fromEntries(names.map((k) => [k, { msPerStep: median(samples[k]), samples: samples[k], cpuSamples: cpuSamples[k] }]));
}

/** A ratio's median over rounds, with its spread. */
export interface PairedRatio {
  median: number;
  min: number;
  max: number;
  /** The per-round ratios. */
  ratios: number[];
}

/**
 * a[r] / b[r] for every round r (samples of one interleaved round share the machine's
 * state of that moment), summarised by the median: a burst of load that hits one round
 * moves one ratio, not the verdict.
 */
export function pairedRatio(a: number[], b: number[]): PairedRatio {
  const ratios = a.map((x, i) => x / b[i]).filter(Number.isFinite);
  return { median: round(median(ratios), 4), min: round(Math.min(...ratios), 4), max: round(Math.max(...ratios), 4), ratios: ratios.map((x) => round(x, 4)) };
}
