import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PluginApi, TapfitPlugin } from '@tapfit/core';
import { Stage } from '@tapfit/core';

/** Appends one JSON line per epoch (epoch, step, time, every metric) to `file`. */
export function jsonlMetrics(file: string): TapfitPlugin {
  let started = 0;
  return {
    name: 'jsonl-metrics',
    core: '^0.1.0',
    apply({ hooks, trainer }: PluginApi) {
      hooks.fitStart.tap({ stage: Stage.REPORT }, () => {
        fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
        fs.writeFileSync(file, '');
        started = performance.now();
      });
      hooks.epochEnd.tap({ stage: Stage.LAST }, ({ epoch, logs }) => {
        const line = { epoch: epoch + 1, step: trainer.step, seconds: +((performance.now() - started) / 1000).toFixed(2), ...logs };
        fs.appendFileSync(file, JSON.stringify(line) + '\n');
      });
    },
  };
}
