import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PluginApi, TapfitPlugin } from '@tapfit/core';
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
    apply({ hooks, trainer }: PluginApi) {
      hooks.fitStart.tap({ stage: Stage.REPORT }, ({ initialEpoch }) => {
        fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
        const kept = options.resume ? linesBefore(file, initialEpoch) : [];
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

/** The lines of `file` for epochs 1..`epochs` (none when the file does not exist). */
function linesBefore(file: string, epochs: number): { epoch: number; seconds?: number }[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as { epoch: number; seconds?: number };
      } catch {
        throw new TapfitError(ErrorCodes.CONFIG, `cannot continue the metrics log '${file}': line ${i + 1} is not JSON. Move the file away (the resumed run then starts a new log).`);
      }
    })
    .filter((l) => l.epoch <= epochs);
}
