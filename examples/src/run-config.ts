import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as core from '@tapfit/core';
import { ErrorCodes, TapfitError, parseOptions, selectBackend, Trainer, type Logger, type TapfitPlugin, type TrainerDescription } from '@tapfit/core';
import { configSchema, type PluginEntry, type TrainConfig } from './config';
import { loadMnist } from './data/mnist';
import { jsonlMetrics } from './plugins/jsonl-metrics';
import { progressBar } from './plugins/progress-bar';
import { presets } from './presets';

/** Reads and validates a config file; errors name the option path. */
export function readConfig(file: string): TrainConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, `cannot read config '${file}': ${(err as Error).message}`);
  }
  return parseOptions('config', configSchema, raw);
}

/**
 * Loads the plugin a config entry names. A plugin package exports
 * `tapfitPlugin(options) => TapfitPlugin`.
 */
export function loadPlugin(entry: PluginEntry, index: number, from: string): TapfitPlugin {
  const [pkg, options] = typeof entry === 'string' ? [entry, {}] : Array.isArray(entry) ? entry : [entry.package, entry.options ?? {}];
  let mod: { tapfitPlugin?: (o: unknown) => TapfitPlugin };
  try {
    mod = require(require.resolve(pkg, { paths: [from, __dirname] }));
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, `config.plugins.${index}: plugin package '${pkg}' is not installed or failed to load (${(err as Error).message.split('\n')[0]}). Run: npm install ${pkg}`);
  }
  if (typeof mod.tapfitPlugin !== 'function') {
    throw new TapfitError(ErrorCodes.CONFIG, `config.plugins.${index}: package '${pkg}' does not export tapfitPlugin(options); it is not a tapfit plugin package.`);
  }
  return mod.tapfitPlugin(options);
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
  history: Record<string, number>[];
  test: Record<string, number>;
  seconds: number;
}

/** `tapfit train`: build the model, data, optimizer and plugins a config names, train, evaluate. */
export async function runConfig(config: TrainConfig, options: { configDir?: string; logger?: Logger; quiet?: boolean } = {}): Promise<RunResult> {
  const log: Logger = options.logger ?? { info: (m) => console.log(m), warn: (m) => console.warn(m) };
  const from = options.configDir ?? process.cwd();
  const plugins = config.plugins.map((e, i) => loadPlugin(e, i, from));
  const backend = await selectBackend(config.backend, { log: (line) => log.info(line) });

  const data = loadMnist({ train: config.data.train, test: config.data.test, seed: config.seed, layout: config.model.preset === 'mnist-mlp' ? 'flat' : 'image' });
  const model = presets[config.model.preset]({ seed: config.seed, ...config.model.options });
  if (config.log.progress && !options.quiet) plugins.push(progressBar());
  if (config.log.metrics) plugins.push(jsonlMetrics(path.resolve(from, config.log.metrics)));
  plugins.push(epochLogger(log));

  const trainer = new Trainer({ model, loss: config.loss, optimizer: optimizerFrom(config.optimizer, config.training.epochs * Math.ceil(config.data.train / config.training.batchSize)), plugins, seed: config.seed, logger: log });
  const started = performance.now();
  try {
    await trainer.setup();
    const describe = trainer.describe();
    const history = await trainer.fit(data.train, { epochs: config.training.epochs, batchSize: config.training.batchSize, validationData: data.test });
    const test = await trainer.evaluate(data.test);
    const seconds = (performance.now() - started) / 1000;
    log.info(`test: loss ${test.loss.toFixed(4)}, accuracy ${(test.accuracy * 100).toFixed(2)}% (${seconds.toFixed(1)} s)`);
    if (config.log.metrics) log.info(`metrics log: ${path.resolve(from, config.log.metrics)}`);
    return { backend: backend.name, describe, history, test, seconds };
  } finally {
    trainer.dispose();
    data.train.dispose();
    data.test.dispose();
    model.dispose();
    void tf;
  }
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
