import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger, PluginApi, TapfitPlugin } from '@tapfit/core';
import { ErrorCodes, Stage, TapfitError } from '@tapfit/core';
import { writeFileAtomic } from '../atomic-write';

/**
 * Writes one JSON line per epoch (epoch, step, seconds, every metric) to `file`. A fresh
 * run replaces the file. With `resume`, the lines of the epochs finished before the
 * resume point are kept and the rest dropped (they were written after the checkpoint),
 * so the log reads as one run. That rewrite replaces the file atomically: a kill during it
 * leaves the previous log, not a truncated one.
 */
export function jsonlMetrics(file: string, options: { resume?: boolean } = {}): TapfitPlugin {
  let started = 0;
  return {
    name: 'jsonl-metrics',
    core: '^0.1.0',
    apply({ hooks, trainer, logger }: PluginApi) {
      hooks.fitStart.tap({ stage: Stage.REPORT }, ({ initialEpoch }) => {
        fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
        const kept = options.resume ? linesBefore(file, initialEpoch, logger) : [];
        writeFileAtomic(file, kept.map((l) => JSON.stringify(l) + '\n').join(''));
        started = performance.now() - 1000 * (kept.at(-1)?.seconds ?? 0);
      });
      hooks.epochEnd.tap({ stage: Stage.LAST }, ({ epoch, logs }) => {
        const line = { epoch: epoch + 1, step: trainer.step, seconds: +((performance.now() - started) / 1000).toFixed(2), ...logs };
        fs.appendFileSync(file, JSON.stringify(line) + '\n');
      });
    },
  };
}

/** One line of the metrics log. */
export interface MetricsLine {
  epoch: number;
  seconds?: number;
}

/**
 * The lines of the metrics log `file`, checked, to continue it (none when it does not
 * exist). A last line cut short, without its newline, is what a kill or a full disk leaves
 * mid-append; it is dropped, and `cut` gives its line number. Any other line that is not a
 * metrics line (an object with a whole epoch number >= 1) is refused: the file is not this
 * run's log, or was edited.
 */
export function readMetricsLog(file: string): { lines: MetricsLine[]; cut: number | null } {
  if (!fs.existsSync(file)) return { lines: [], cut: null };
  const text = fs.readFileSync(file, 'utf8');
  const rows = text.split('\n');
  const refuse = (n: number, why: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `cannot continue the metrics log '${file}': line ${n} ${why}. Move the file away (the resumed run then starts a new log).`);
  };
  const lines: MetricsLine[] = [];
  let cut: number | null = null;
  rows.forEach((row, i) => {
    if (!row.trim()) return;
    let line: unknown;
    try {
      line = JSON.parse(row);
    } catch {
      if (i === rows.length - 1) return void (cut = i + 1); // no newline after it: an append cut short
      refuse(i + 1, 'is not JSON');
    }
    const epoch = (line as { epoch?: unknown } | null)?.epoch;
    if (typeof line !== 'object' || line === null || Array.isArray(line) || !Number.isInteger(epoch) || (epoch as number) < 1) {
      refuse(i + 1, `is not a metrics line (an object with a whole 'epoch' >= 1; it holds ${row.length > 60 ? `${row.slice(0, 57)}...` : row})`);
    }
    lines.push(line as MetricsLine);
  });
  return { lines, cut };
}

/** The lines of `file` for epochs 1..`epochs`, warning when a cut last line is dropped. */
function linesBefore(file: string, epochs: number, logger: Logger): MetricsLine[] {
  const { lines, cut } = readMetricsLog(file);
  if (cut !== null) logger.warn(`the metrics log '${file}' ends in a line cut short (line ${cut}: a write interrupted by a kill or a full disk); dropped it.`);
  return lines.filter((l) => l.epoch <= epochs);
}
