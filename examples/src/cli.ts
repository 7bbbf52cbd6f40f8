#!/usr/bin/env node
import * as path from 'node:path';
import { BACKEND_PREFERENCES, CORE_VERSION, type BackendPreference } from '@tapfit/core';
import { Command, Option } from 'commander';
import { tapfitErrorLine } from './cli-error';
import { stopWhenPipeCloses } from './closed-pipe';
import { collect, wholeNumberFlag } from './cli-flags';
import { readConfig, runConfig } from './run-config';
import { RunInterrupted } from './run-interrupted';
import { stopOnSignals } from './signal-stop';

interface TrainFlags {
  backend?: BackendPreference;
  epochs?: number;
  resume?: boolean;
  localPlugin?: string[];
  report?: string;
}

// Ctrl-C / SIGTERM: stop after the batch, save, restore the terminal, then end by the signal (130 / 143).
const signals = stopOnSignals();
// A reader that goes away (| head): the same, ending with SIGPIPE's status (141).
stopWhenPipeCloses(() => signals.interrupt('SIGPIPE'));

const program = new Command();
program.name('tapfit').description('Train TensorFlow.js models with tapfit plugins from a JSON config.');
// This package's version (dist/src/cli.js -> package.json) and the core it trains with: commander's -V, --version.
const { version } = require('../../package.json') as { version: string };
program.version(`${version} (@tapfit/core ${CORE_VERSION})`);
program
  .command('train')
  .argument('<config>', 'path to a JSON config (model preset, dataset, optimizer, plugins)')
  .addOption(new Option('-b, --backend <name>', 'override the config backend').choices([...BACKEND_PREFERENCES]))
  .option('-e, --epochs <n>', 'override training.epochs (a whole number >= 1)', wholeNumberFlag(1))
  .option('--resume', "continue from the newest checkpoint in the config's checkpoint.dir")
  .option('--local-plugin <file>', 'also load the plugin this local file exports (repeatable; config plugins must be package names)', collect)
  .option('--report <dir>', 'write an HTML training report (loss, accuracy, learning rate, step time, peak memory, memory plan, hook order) to this folder')
  .description('train the model a config describes and evaluate it on the test split')
  .action(async (file: string, flags: TrainFlags) => {
    const config = readConfig(file);
    if (flags.backend) config.backend = flags.backend;
    if (flags.epochs !== undefined) config.training.epochs = flags.epochs;
    await runConfig(config, { configDir: path.dirname(path.resolve(file)), configFile: file, resume: flags.resume, localPlugins: flags.localPlugin, report: flags.report, interrupt: signals.signal });
  });

program.parseAsync().then(
  () => signals.endIfInterrupted(),
  (err: unknown) => {
    if (!(err instanceof RunInterrupted)) console.error(tapfitErrorLine(err) ?? err);
    if (!signals.endIfInterrupted()) process.exit(1);
  },
);
