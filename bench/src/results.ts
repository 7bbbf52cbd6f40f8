import * as fs from 'node:fs';
import * as path from 'node:path';

/** One checkable target: `met` is computed from `measured` and `target`, never typed in. */
export interface Target {
  name: string;
  measured: number;
  target: number;
  /** 'max': measured must be <= target; 'min': measured must be >= target. */
  kind: 'max' | 'min';
  /** null: the target does not apply to this run (`note` says why); it is not met either. */
  met: boolean | null;
  note?: string;
}

export function target(name: string, measured: number, kind: 'max' | 'min', bound: number): Target {
  const met = Number.isFinite(measured) && (kind === 'max' ? measured <= bound : measured >= bound);
  return { name, measured, target: bound, kind, met };
}

/** A target this run cannot test (e.g. a hardware-speed target on a software GPU): recorded with its figure, `met: null`. */
export function notApplicable(name: string, measured: number, kind: 'max' | 'min', bound: number, note: string): Target {
  return { name, measured, target: bound, kind, met: null, note };
}

export const resultsDir = path.resolve(__dirname, '..', '..', 'results');

/**
 * Write bench/results/<name>.json atomically (temp file + rename) and print the
 * targets table. `data` holds every measured figure.
 */
export function writeResults(name: string, data: Record<string, unknown>, targets: Target[], command = `npm run bench -- ${name}`): string {
  fs.mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.json`);
  const body = {
    name,
    date: new Date().toISOString(),
    machine: machineInfo(),
    command,
    ...data,
    targets,
  };
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n');
  fs.renameSync(tmp, file);
  if (targets.length) {
    console.log('\ntargets:');
    console.table(targets.map((t) => ({ name: t.name, measured: Math.abs(t.measured) < 1e-3 ? Number(t.measured.toPrecision(3)) : round(t.measured), target: `${t.kind === 'max' ? '<=' : '>='} ${t.target}`, met: t.met ?? `n/a (${t.note})` })));
  }
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
  return file;
}

export function round(x: number, digits = 4): number {
  if (!Number.isFinite(x)) return x;
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}

function machineInfo(): Record<string, unknown> {
  const os = require('node:os') as typeof import('node:os');
  return { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, totalMemGiB: Math.round(os.totalmem() / 2 ** 30) };
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
