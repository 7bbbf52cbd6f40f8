#!/usr/bin/env node
import * as path from 'node:path';
import { Command } from 'commander';
import { TapfitError } from '@tapfit/core';
import { readConfig, runConfig } from './run-config';

const program = new Command();
program.name('tapfit').description('Train TensorFlow.js models with tapfit plugins from a JSON config.');
program
  .command('train')
  .argument('<config>', 'path to a JSON config (model preset, dataset, optimizer, plugins)')
  .option('-b, --backend <name>', 'override the config backend: auto | tensorflow | wasm | cpu')
  .option('-e, --epochs <n>', 'override training.epochs', (v) => parseInt(v, 10))
  .description('train the model a config describes and evaluate it on the test split')
  .action(async (file: string, opts: { backend?: string; epochs?: number }) => {
    const config = readConfig(file);
    if (opts.backend) config.backend = opts.backend as typeof config.backend;
    if (opts.epochs) config.training.epochs = opts.epochs;
    await runConfig(config, { configDir: path.dirname(path.resolve(file)) });
  });

program.parseAsync().catch((err: unknown) => {
  console.error(err instanceof TapfitError ? `error [${err.code}]: ${err.message}` : err);
  process.exit(1);
});
