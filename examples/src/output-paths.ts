import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, TapfitError, type Logger } from '@tapfit/core';

/** Where a run writes: the metrics log, the checkpoint folder and the report folder, resolved paths. */
export interface Outputs {
  metrics?: string;
  checkpointDir?: string;
  /** The report folder and where it was named: the `--report` flag or the config's `log.report`. */
  report?: { dir: string; from: '--report' | 'log.report' };
}

/**
 * Checks the output paths before anything runs. Writing over the config file itself is
 * refused (it would destroy the run's description). An existing metrics log is replaced
 * by a fresh run (with a warning) and continued by `--resume`; existing checkpoints are
 * written over by a fresh run (with a warning). Outputs that are the same path or lie one
 * inside another are refused. Nothing is created here.
 */
export function checkOutputs(outputs: Outputs, options: { configFile?: string; resume: boolean; log: Logger }): void {
  const config = options.configFile && realPath(options.configFile);
  for (const [key, target] of [['log.metrics', outputs.metrics], ['checkpoint.dir', outputs.checkpointDir]] as const) {
    if (target && config && realPath(target) === config) {
      throw new TapfitError(ErrorCodes.CONFIG, `config: option '${key}' points at the config file itself ('${target}'); the run would overwrite it. Choose another path, e.g. 'runs/${path.parse(target).name}${key === 'log.metrics' ? '.metrics.jsonl' : '-checkpoints'}'.`);
    }
  }
  checkApart(outputs);
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

/** One output as the user named it, for messages: the option, and how a separate path for it could read. */
interface NamedOutput {
  option: string;
  path: string;
  example: string;
}

/**
 * Refuses outputs that are the same path or one inside another, before anything is written:
 * each is written, replaced or pruned on its own (a checkpoint save makes folders and prunes
 * old ones, a fresh metrics log replaces its file), so sharing a path breaks the run mid-way
 * and loses what it trained.
 */
function checkApart(outputs: Outputs): void {
  const named: NamedOutput[] = [];
  if (outputs.metrics) named.push({ option: "option 'log.metrics'", path: outputs.metrics, example: "'log.metrics': 'runs/metrics.jsonl'" });
  if (outputs.checkpointDir) named.push({ option: "option 'checkpoint.dir'", path: outputs.checkpointDir, example: "'checkpoint.dir': 'runs/checkpoints'" });
  if (outputs.report) {
    const flag = outputs.report.from === '--report';
    named.push({ option: flag ? '--report' : "option 'log.report'", path: outputs.report.dir, example: flag ? '--report runs/report' : "'log.report': 'runs/report'" });
  }
  for (const [i, a] of named.entries()) {
    for (const b of named.slice(i + 1)) {
      const [pa, pb] = [realPath(a.path), realPath(b.path)];
      const how = pa === pb ? `${a.option} and ${b.option} are the same path ('${a.path}')`
        : isInside(pa, pb) ? `${a.option} ('${a.path}') is inside ${b.option} ('${b.path}')`
        : isInside(pb, pa) ? `${b.option} ('${b.path}') is inside ${a.option} ('${a.path}')`
        : undefined;
      if (how) {
        throw new TapfitError(ErrorCodes.CONFIG, `output paths overlap: ${how}. Each output needs a path of its own, none inside another; put them side by side, e.g. ${a.example} and ${b.example}.`);
      }
    }
  }
}

function isInside(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel !== '' && rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel);
}

/** The file's real path (links resolved), also when it does not exist yet: its nearest existing folder's real path plus the rest. */
function realPath(file: string): string {
  const abs = path.resolve(file);
  if (fs.existsSync(abs)) return fs.realpathSync(abs);
  const parent = path.dirname(abs);
  return parent === abs ? abs : path.join(realPath(parent), path.basename(abs));
}
