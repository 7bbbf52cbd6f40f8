import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type TapfitError, SilentLogger, TensorData, Trainer, type PluginState, type TapfitPlugin, type TrainerOptions } from '../src';
import { sgd } from '../src/transforms';
import { blobData, tinyModel } from '../src/testing';

/** A small seeded classification problem and an MLP for it (the testing kit's). */
export const blobs = (n = 96, seed = 1): TensorData => blobData(n, { seed });
export const tinyMlp = (seed = 1): tf.Sequential => tinyModel({ seed });

export function tinyTrainer(options: Partial<TrainerOptions> = {}): Trainer {
  return new Trainer({
    model: options.model ?? tinyMlp(),
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: 0.1, momentum: 0.9 }),
    logger: new SilentLogger(),
    ...options,
  });
}

/** Call inside a describe(): its tests run on `backend` (cpu, the reference, by default). */
export function useBackend(backend = 'cpu'): void {
  before(async () => {
    tf.env().set('PROD', true);
    // selectBackend registers wasm and installs its training shim
    if (backend === 'wasm') await selectBackend('wasm', { log: false });
    await tf.setBackend(backend);
    await tf.ready();
  });
}

/** A fresh temporary folder for checkpoints. */
export const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-ckpt-'));

/** A plugin with state: counts the steps it saw and keeps a running-sum tensor. */
export function counter(name = 'counter'): TapfitPlugin & { seen: number; sum?: tf.Tensor } {
  const p = {
    name,
    core: '^0.1.0',
    seen: 0,
    sum: undefined as tf.Tensor | undefined,
    apply({ hooks }: Parameters<TapfitPlugin['apply']>[0]) {
      hooks.backward.tap(name, (g) => {
        p.seen++;
        const next = tf.keep(tf.add(p.sum ?? tf.scalar(0), tf.sum(Object.values(g!)[0])));
        p.sum?.dispose();
        p.sum = next;
        return g;
      });
    },
    saveState(): PluginState {
      return { json: { seen: p.seen }, tensors: p.sum ? { sum: p.sum } : {} };
    },
    loadState(s: PluginState) {
      p.seen = (s.json as { seen: number }).seen;
      p.sum?.dispose();
      p.sum = s.tensors?.sum;
    },
  };
  return p;
}

/** A checkpointing test's trainer: tinyMlp(5), SGD with momentum and the counter plugin (plugin state to save); `extra` wins. */
export function checkpointOptions(extra: Partial<TrainerOptions> = {}): TrainerOptions {
  return { model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), logger: new SilentLogger(), plugins: [counter()], ...extra };
}

/** The trainer of the save-loop child process (fixtures/save-loop.ts) and of its checks. */
export function saveLoopOptions(): TrainerOptions {
  return { model: tinyMlp(3), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), logger: new SilentLogger(), seed: 5, plugins: [counter()] };
}

/** The error `f` throws (fails the test when it throws none). */
export function thrown(f: () => unknown): TapfitError {
  try {
    f();
  } catch (err) {
    return err as TapfitError;
  }
  throw new Error('expected an error');
}

/** The error `p` rejects with (fails the test when it resolves). */
export async function rejected(p: Promise<unknown>): Promise<TapfitError> {
  try {
    await p;
  } catch (err) {
    return err as TapfitError;
  }
  throw new Error('expected an error');
}
