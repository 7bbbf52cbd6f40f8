import * as fs from 'node:fs';
import * as path from 'node:path';
import * as core from '@tapfit/core';
import { fileURLToPath } from 'node:url';
import { claimCheckpointFolder, ErrorCodes, TapfitError, parseOptions, selectBackend, Trainer, validatePluginSet, type History, type Logger, type TapfitPlugin, type TrainerDescription, type TrainerOptions } from '@tapfit/core';
import { configSchema, type PluginEntry, type TrainConfig } from './config';
import { loadMnist } from './data/mnist';
import { checkOutputs } from './output-paths';
import { loadFileModule, loadPackageModule } from './plugin-module';
import { pluginSpecProblem } from './plugin-spec';
import { checkResumable } from './resume-point';
import { checkpoints } from './plugins/checkpoints';
import { jsonlMetrics, readMetricsLog } from './plugins/jsonl-metrics';
import { progressBar } from './plugins/progress-bar';
import { RunInterrupted } from './run-interrupted';
import { presets } from './presets';
import { checkReportDir, writeReport } from './report/report-dir';
import { trainingReport } from './report/report-plugin';

/** Reads and validates a config file; errors name the option path. */
export function readConfig(file: string): TrainConfig {
  let raw: unknown;
  try {
    // An editor may save it with a byte-order mark, which JSON.parse refuses.
    raw = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, `cannot read config '${file}': ${(err as Error).message}`);
  }
  return parseOptions('config', configSchema, raw);
}

/**
 * Loads the plugin a config entry names: an installed package (CommonJS or ESM) exporting
 * `tapfitPlugin(options) => TapfitPlugin`. A file path is refused before anything is
 * loaded (local files need `loadLocalPlugin`, i.e. the `--local-plugin` flag).
 */
export async function loadPlugin(entry: PluginEntry, index: number, from: string): Promise<TapfitPlugin> {
  const [pkg, options] = typeof entry === 'string' ? [entry, {}] : Array.isArray(entry) ? entry : [entry.package, entry.options ?? {}];
  const problem = pluginSpecProblem(pkg);
  if (problem) throw new TapfitError(ErrorCodes.CONFIG, `config.plugins.${index}: '${pkg}' ${problem}.`);
  const mod = await loadPackageModule(pkg, [from, __dirname], `config.plugins.${index}: plugin package '${pkg}'`);
  // A plugin package with its own @tapfit/core or tfjs (not peers) is refused here, naming it.
  core.assertSinglePackageCopies(`config.plugins.${index}: plugin package '${pkg}'`);
  if (typeof mod.tapfitPlugin !== 'function') {
    throw new TapfitError(ErrorCodes.CONFIG, `config.plugins.${index}: package '${pkg}' does not export tapfitPlugin(options); it is not a tapfit plugin package.`);
  }
  return mod.tapfitPlugin(options) as TapfitPlugin;
}

/**
 * Loads a plugin from a local file (CommonJS or ESM) the user named on purpose
 * (`--local-plugin <file>`, a path resolved against `cwd` or a `file:` URL): the file
 * exports `tapfitPlugin(options)`, called with `{}`.
 */
export async function loadLocalPlugin(file: string, cwd = process.cwd()): Promise<TapfitPlugin> {
  const where = path.resolve(cwd, file.startsWith('file:') ? fileURLToPath(file) : file);
  const mod = await loadFileModule(where, `--local-plugin ${file}`);
  core.assertSinglePackageCopies(`--local-plugin ${file}`);
  if (typeof mod.tapfitPlugin !== 'function') {
    throw new TapfitError(ErrorCodes.CONFIG, `--local-plugin ${file}: '${where}' does not export tapfitPlugin(options); export that function from the file.`);
  }
  return mod.tapfitPlugin({}) as TapfitPlugin;
}

function optimizerFrom(c: TrainConfig['optimizer'], totalSteps: number): core.StepTransform {
  const lr = c.schedule === 'cosine' ? core.cosineDecay({ initial: c.lr, decaySteps: totalSteps }) : c.lr;
  switch (c.name) {
    case 'sgd':
      return core.sgd({ lr, momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay });
    case 'adam':
      return core.adam({ lr, b1: c.b1, b2: c.b2, eps: c.eps });
    case 'adamw':
      return core.adamw({ lr, b1: c.b1, b2: c.b2, eps: c.eps, weightDecay: c.weightDecay });
  }
}

export interface RunResult {
  backend: string;
  /** What `trainer.describe()` returned after setup. */
  describe: TrainerDescription;
  /** What fit returned: `{ epoch, history: { loss, acc, val_loss, val_acc }, params }`. */
  history: History;
  test: Record<string, number>;
  seconds: number;
  /** The training report's HTML file, when one was asked for. */
  report?: string;
}

export interface RunOptions {
  /** Folder relative paths of the config resolve against (plugins, metrics, checkpoints); default: cwd. */
  configDir?: string;
  /** The config file: outputs must not overwrite it. */
  configFile?: string;
  logger?: Logger;
  /** No progress bar. */
  quiet?: boolean;
  /** Continue from the newest checkpoint in `config.checkpoint.dir` (`--resume`). */
  resume?: boolean;
  /** Plugin files the user named with `--local-plugin`, resolved against the current folder. */
  localPlugins?: readonly string[];
  /** Write a training report to this folder (`--report`, resolved against the current folder); overrides `log.report`. */
  report?: string;
  /**
   * Stop when this aborts (the CLI aborts it at SIGINT/SIGTERM): training stops after the
   * current batch, a checkpoint is saved there (with `checkpoint.dir`), the progress bar is
   * stopped, and runConfig rejects with RunInterrupted instead of evaluating. Its reason
   * names what stopped the run ('SIGINT'). Given, the progress bar also uses cli-progress's
   * `gracefulExit` (the caller handles the signals).
   */
  interrupt?: AbortSignal;
}

/** `tapfit train`: build the model, data, optimizer and plugins a config names, train, evaluate. */
export async function runConfig(config: TrainConfig, options: RunOptions = {}): Promise<RunResult> {
  const log: Logger = options.logger ?? { info: (m) => console.log(m), warn: (m) => console.warn(m) };
  const from = options.configDir ?? process.cwd();
  const resume = options.resume ?? false;
  if (resume && !config.checkpoint) {
    throw new TapfitError(ErrorCodes.CONFIG, "--resume needs a checkpoint folder: add \"checkpoint\": { \"dir\": \"...\" } to the config (the run resumes from the newest checkpoint there).");
  }
  const metricsFile = config.log.metrics && path.resolve(from, config.log.metrics);
  const checkpointDir = config.checkpoint && path.resolve(from, config.checkpoint.dir);
  const reportDir = options.report ? path.resolve(options.report) : config.log.report && path.resolve(from, config.log.report);
  // Every output is checked, against the others too, before anything is created: a refused run leaves nothing behind.
  const reportOutput = reportDir ? { dir: reportDir, from: options.report ? ('--report' as const) : ('log.report' as const) } : undefined;
  checkOutputs({ metrics: metricsFile, checkpointDir, report: reportOutput }, { configFile: options.configFile, resume, log });
  if (resume) checkResumable(checkpointDir!);
  // The log to continue, before anything loads (a cut last line is dropped, with a warning, at fitStart).
  if (resume && metricsFile) readMetricsLog(metricsFile);
  if (reportDir) checkReportDir(reportDir, options.report ? '--report' : "config: option 'log.report'");

  const plugins: TapfitPlugin[] = [];
  for (const [i, entry] of config.plugins.entries()) plugins.push(await loadPlugin(entry, i, from));
  for (const file of options.localPlugins ?? []) plugins.push(await loadLocalPlugin(file));
  validatePluginSet(plugins); // conflicts, missing requirements: before a backend is picked or data loaded
  // One run per checkpoint folder: a second run into it is refused here, before it trains; the claim ends with the run
  // (and removes the folders it made, if the run left them empty).
  const claim = checkpointDir ? claimCheckpointFolder(checkpointDir) : undefined;
  try {
    return await train(config, options, { log, resume, metricsFile, checkpointDir, reportDir, plugins });
  } finally {
    try {
      claim?.release();
    } catch (err) {
      // A lock file it could not remove: the run's own result or error stands, and the message names the file.
      log.warn(err instanceof Error ? err.message : String(err));
    }
  }
}

/** What runConfig resolved and checked before training. */
interface Checked {
  log: Logger;
  resume: boolean;
  metricsFile?: string;
  checkpointDir?: string;
  reportDir?: string;
  plugins: TapfitPlugin[];
}

/** Picks the backend, loads the data, builds the trainer (or resumes it), trains, evaluates, writes the report. */
async function train(config: TrainConfig, options: RunOptions, { log, resume, metricsFile, checkpointDir, reportDir, plugins }: Checked): Promise<RunResult> {
  const backend = await selectBackend(config.backend, { log: (line) => log.info(line) });

  const data = loadMnist({ train: config.data.train, test: config.data.test, seed: config.seed, layout: config.model.preset === 'mnist-mlp' ? 'flat' : 'image' });
  const model = presets[config.model.preset]({ seed: config.seed, ...config.model.options });
  const progress = config.log.progress && !options.quiet ? progressBar({ gracefulExit: options.interrupt !== undefined }) : undefined;
  if (progress) plugins.push(progress);
  if (metricsFile) plugins.push(jsonlMetrics(metricsFile, { resume }));
  let trainer: Trainer | undefined;
  if (checkpointDir) plugins.push(checkpoints({ dir: checkpointDir, every: config.checkpoint?.every }, (dir) => trainer!.save(dir)));
  plugins.push(epochLogger(log));
  const report = reportDir ? trainingReport({ dir: reportDir }) : undefined;
  if (report) plugins.push(report);

  const stepsPerEpoch = Math.ceil(config.data.train / config.training.batchSize);
  const trainerOptions: TrainerOptions = {
    model,
    loss: config.loss,
    optimizer: optimizerFrom(config.optimizer, config.training.epochs * stepsPerEpoch),
    metrics: ['accuracy'],
    plugins,
    seed: config.seed,
    logger: log,
  };
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const interrupt = options.interrupt;
  const onInterrupt = () => {
    progress?.stop(); // ends the bar's line: the notice starts on a fresh one
    trainer?.stop();
    const what = trainer ? ` after the current batch${checkpointDir ? ' and saving a checkpoint' : ''}` : ' before training';
    if (interrupt!.reason === 'SIGPIPE') return log.warn(`the output's reader went away (SIGPIPE): stopping${what}.`);
    const how = interrupt!.reason === 'SIGINT' ? 'press Ctrl-C again' : `send ${String(interrupt!.reason)} again`;
    log.warn(`${String(interrupt!.reason)}: stopping${what}; ${how} to quit at once.`);
  };
  if (interrupt?.aborted) onInterrupt();
  else interrupt?.addEventListener('abort', onInterrupt, { once: true });
  try {
    trainer = resume ? await Trainer.resume(checkpointDir!, trainerOptions) : new Trainer(trainerOptions);
    // Numbered as the report numbers steps, by batches run (trainer.step counts applied updates only: a delay queue or a skipped step applies none).
    const resumedAt = resume ? trainer.position.epoch * Math.ceil(data.train.size / config.training.batchSize) + trainer.position.batch : undefined;
    if (resume) {
      const { epoch, batch } = trainer.position;
      const finished = batch === 0 && epoch >= config.training.epochs;
      log.info(finished
        ? `resumed from '${checkpointDir}': it finished all ${config.training.epochs} epochs (step ${trainer.step}), nothing left to train; evaluating. Raise training.epochs to train on.`
        : `resumed from '${checkpointDir}' at epoch ${epoch + 1}, batch ${batch} (step ${trainer.step})`);
    }
    await trainer.setup();
    const describe = trainer.describe();
    // fit() clears an earlier stop(): a signal that came before it ends the run here.
    if (interrupt?.aborted) throw new RunInterrupted(String(interrupt.reason));
    // training.epochs is the run's total: a resumed run trains up to it (initialEpoch makes that explicit).
    const history = await trainer.fit(data.train, { epochs: config.training.epochs, ...(resume ? { initialEpoch: trainer.position.epoch } : {}), batchSize: config.training.batchSize, validationData: data.test });
    // The checkpoints plugin saved where fit stopped (at fitEnd); the run is not evaluated.
    if (interrupt?.aborted) throw stoppedAt(trainer, config.training.epochs, checkpointDir, String(interrupt.reason), log);
    const test = await trainer.evaluate(data.test);
    const seconds = (performance.now() - started) / 1000;
    log.info(`test: loss ${test.loss.toFixed(4)}, accuracy ${(test.acc * 100).toFixed(2)}% (${seconds.toFixed(1)} s)`);
    if (metricsFile) log.info(`metrics log: ${metricsFile}`);
    const title = options.configFile ? path.basename(options.configFile, '.json') : 'tapfit run';
    const html = report && writeReport(reportDir!, { title, started: startedAt, backend: backend.name, describe, steps: report.records(), stepSummary: report.summary, epochs: report.epochs, resumedAt, test, seconds });
    if (html) log.info(`training report: ${html}`);
    return { backend: backend.name, describe, history, test, seconds, ...(html ? { report: html } : {}) };
  } finally {
    interrupt?.removeEventListener('abort', onInterrupt);
    progress?.stop(); // also when the run failed: the terminal is restored before the error prints
    trainer?.dispose();
    data.train.dispose();
    data.test.dispose();
    model.dispose();
  }
}

/** Says where an interrupted run stopped and how to go on; the error runConfig rejects with. */
function stoppedAt(trainer: Trainer, epochs: number, checkpointDir: string | undefined, signal: string, log: Logger): RunInterrupted {
  const { epoch, batch } = trainer.position;
  const where = epoch >= epochs ? `after the last epoch (step ${trainer.step}), before the test evaluation` : `at epoch ${epoch + 1}, batch ${batch} (step ${trainer.step})`;
  log.warn(
    checkpointDir
      ? `interrupted ${where}; the checkpoint in '${checkpointDir}' holds it: run the same command with --resume to continue.`
      : `interrupted ${where}; nothing was saved (the config has no checkpoint.dir).`,
  );
  return new RunInterrupted(signal);
}

/** Prints one line of metrics per epoch. */
function epochLogger(log: Logger): TapfitPlugin {
  return {
    name: 'epoch-logger',
    core: '^0.1.0',
    apply({ hooks }) {
      hooks.epochEnd.tap({ stage: core.Stage.REPORT }, ({ epoch, logs }) => {
        log.info(`epoch ${epoch + 1}: ${Object.entries(logs).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
      });
    },
  };
}
