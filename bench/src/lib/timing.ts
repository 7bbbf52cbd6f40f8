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
  return summarised(a.map((x, i) => x / b[i]));
}

/** Ratios summarised by their median and spread (non-finite ones dropped). */
function summarised(all: number[]): PairedRatio {
  const ratios = all.filter(Number.isFinite);
  return { median: round(median(ratios), 4), min: round(Math.min(...ratios), 4), max: round(Math.max(...ratios), 4), ratios: ratios.map((x) => round(x, 4)) };
}

/** b's time over a's from blocks run back to back, with both sides' median ms per step. */
export interface BlockRatio extends PairedRatio {
  /** The denominator's (a's) median ms per step over blocks. */
  denominatorMsPerStep: number;
  /** The numerator's (b's) median ms per step over blocks. */
  numeratorMsPerStep: number;
  blocks: number;
}

/**
 * b's time over a's, measured in blocks of four runs, a b b a then b a a b: each block's
 * ratio (b + b) / (a + a) comes from a second or two of the machine's time with nothing else
 * run in between, so a change of the machine's state (this VM switches between a fast and a
 * slow state every few seconds, which moved a six-variant round's ratios by up to 1.8x) hits
 * few blocks, and a steady drift inside a block cancels by the symmetric order. The median
 * over blocks is the verdict; min and max give the spread.
 */
export async function blockRatio(a: () => Promise<number> | number, b: () => Promise<number> | number, blocks: number, warmup = 2, clock = () => performance.now()): Promise<BlockRatio> {
  const ratios: number[] = [];
  const aMs: number[] = [];
  const bMs: number[] = [];
  const timed = async (f: () => Promise<number> | number) => {
    const t0 = clock();
    const steps = await f();
    return (clock() - t0) / steps;
  };
  for (let k = 0; k < warmup + blocks; k++) {
    const order = k % 2 === 0 ? [a, b, b, a] : [b, a, a, b];
    const ms: number[] = [];
    for (const f of order) ms.push(await timed(f));
    const [sumA, sumB] = k % 2 === 0 ? [ms[0] + ms[3], ms[1] + ms[2]] : [ms[1] + ms[2], ms[0] + ms[3]];
    if (k < warmup) continue;
    ratios.push(sumB / sumA);
    aMs.push(sumA / 2);
    bMs.push(sumB / 2);
  }
  return { ...summarised(ratios), denominatorMsPerStep: round(median(aMs), 3), numeratorMsPerStep: round(median(bMs), 3), blocks };
}
