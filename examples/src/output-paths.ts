import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, TapfitError, type Logger } from '@tapfit/core';

/** Where a run writes: the metrics log and the checkpoint folder, resolved against the config's folder. */
export interface Outputs {
  metrics?: string;
  checkpointDir?: string;
}

/**
 * Checks the output paths before anything runs. Writing over the config file itself is
 * refused (it would destroy the run's description). An existing metrics log is replaced
 * by a fresh run (with a warning) and continued by `--resume`; existing checkpoints are
 * written over by a fresh run (with a warning).
 */
export function checkOutputs(outputs: Outputs, options: { configFile?: string; resume: boolean; log: Logger }): void {
  const config = options.configFile && realPath(options.configFile);
  for (const [key, target] of [['log.metrics', outputs.metrics], ['checkpoint.dir', outputs.checkpointDir]] as const) {
    if (target && config && realPath(target) === config) {
      throw new TapfitError(ErrorCodes.CONFIG, `config: option '${key}' points at the config file itself ('${target}'); the run would overwrite it. Choose another path, e.g. 'runs/${path.parse(target).name}${key === 'log.metrics' ? '.metrics.jsonl' : '-checkpoints'}'.`);
    }
  }
  if (outputs.metrics && fs.existsSync(outputs.metrics)) {
    if (fs.statSync(outputs.metrics).isDirectory()) {
      throw new TapfitError(ErrorCodes.CONFIG, `config: option 'log.metrics' is a folder ('${outputs.metrics}'); it must name a file, e.g. '${path.join(outputs.metrics, 'metrics.jsonl')}'.`);
    }
    if (!options.resume) options.log.warn(`metrics log '${outputs.metrics}' exists; this run replaces it (--resume continues it instead).`);
  }
  const dir = outputs.checkpointDir;
  if (dir && fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) {
      throw new TapfitError(ErrorCodes.CONFIG, `config: option 'checkpoint.dir' is an existing file ('${dir}'); it must name a folder. Choose another path.`);
    }
    if (!options.resume && fs.readdirSync(dir).some((n) => n === 'LATEST' || /^step-\d+$/.test(n))) {
      options.log.warn(`checkpoint folder '${dir}' holds checkpoints already; this fresh run writes over them (--resume continues from them instead).`);
    }
  }
}

/** The file's real path when it exists (links resolved), else its absolute path. */
function realPath(file: string): string {
  const abs = path.resolve(file);
  return fs.existsSync(abs) ? fs.realpathSync(abs) : abs;
}
