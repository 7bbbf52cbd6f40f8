import * as tf from '@tensorflow/tfjs';
import { adam, selectBackend, SilentLogger, Trainer, type TapfitPlugin, type TensorData } from '@tapfit/core';
import { loadMnist, mnistCnn } from '@tapfit/examples';
import { onlineNorm } from '@tapfit/plugin-onlinenorm';
import { interleave } from '../lib/timing';
import { round, target, writeResults, type Target } from '../results';

/**
 * Online Normalization against BatchNorm on real MNIST digits, both trained by the tapfit
 * Trainer (the OnlineNorm model is the BatchNorm model with the plugin swapping its BN
 * layers). Measures per-sample step time at batch 32 (target: ON <= 1.3x BN), ON at batch
 * size 1 (what it is for), and, unless `--no-accuracy`, test accuracy after one epoch on
 * 4000 digits (informational, no target).
 *
 * `npm run bench -- onlinenorm [rounds] [--no-accuracy]`
 */

const BATCH = 32;
const STEPS = 10;

interface Case {
  name: string;
  layout: 'image' | 'flat';
  build: () => tf.LayersModel;
}

/** The paper's FMNIST setting: a 3-layer MLP with a normaliser after each hidden layer. */
function bnMlp(seed: number): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed * 10 + k });
  return tf.sequential({
    name: 'mnist_mlp_bn',
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [784], units: 256, kernelInitializer: init(1), useBias: false }),
      tf.layers.batchNormalization({ name: 'norm1' }),
      tf.layers.reLU({ name: 'relu1' }),
      tf.layers.dense({ name: 'fc2', units: 256, kernelInitializer: init(2), useBias: false }),
      tf.layers.batchNormalization({ name: 'norm2' }),
      tf.layers.reLU({ name: 'relu2' }),
      tf.layers.dense({ name: 'logits', units: 10, kernelInitializer: init(3) }),
    ],
  });
}

const cases: Case[] = [
  { name: 'cnn', layout: 'image', build: () => mnistCnn({ norm: 'batchNorm', seed: 1 }) },
  { name: 'mlp', layout: 'flat', build: () => bnMlp(1) },
];

function trainer(build: () => tf.LayersModel, plugins: TapfitPlugin[]): Trainer {
  return new Trainer({ model: build(), loss: 'softmaxCrossEntropy', optimizer: adam({ lr: 0.002 }), logger: new SilentLogger(), plugins, seed: 1 });
}

/** Runs one more epoch over `data` per call; returns the number of steps. */
async function epochRunner(t: Trainer, data: TensorData, batchSize: number): Promise<() => Promise<number>> {
  await t.setup();
  const steps = Math.ceil(data.size! / batchSize);
  return async () => {
    await t.fit(data, { epochs: t.position.epoch + 1, batchSize, shuffle: false });
    return steps;
  };
}

async function speed(c: Case, rounds: number) {
  const { train, test } = loadMnist({ train: BATCH * STEPS, test: 1, layout: c.layout, seed: 1 });
  test.dispose();
  const { train: single, test: t2 } = loadMnist({ train: STEPS * 2, test: 1, layout: c.layout, seed: 2 });
  t2.dispose();
  const timing = await interleave(
    {
      batchNorm: await epochRunner(trainer(c.build, []), train, BATCH),
      onlineNorm: await epochRunner(trainer(c.build, [onlineNorm()]), train, BATCH),
      onlineNormLs: await epochRunner(trainer(c.build, [onlineNorm({ ecm: 'ls' })]), train, BATCH),
      onlineNormBatch1: await epochRunner(trainer(c.build, [onlineNorm()]), single, 1),
    },
    rounds,
  );
  train.dispose();
  single.dispose();
  const perSample = {
    batchNorm: timing.batchNorm.msPerStep / BATCH,
    onlineNorm: timing.onlineNorm.msPerStep / BATCH,
    onlineNormLs: timing.onlineNormLs.msPerStep / BATCH,
    onlineNormBatch1: timing.onlineNormBatch1.msPerStep,
  };
  return { timing, perSample };
}

/**
 * Test accuracy after one epoch. BatchNorm is also scored with batch statistics: after
 * 125 updates its moving averages (momentum 0.99) are still mostly their initial values,
 * which is what its inference-mode score shows; OnlineNorm's statistics move per sample.
 */
async function accuracy(c: Case) {
  const { train, test } = loadMnist({ train: 4000, test: 2000, layout: c.layout, seed: 1 });
  const out: Record<string, number> = {};
  for (const [name, plugins] of [['batchNorm', []], ['onlineNorm', [onlineNorm()]]] as const) {
    const t = trainer(c.build, [...plugins]);
    await t.fit(train, { epochs: 1, batchSize: BATCH });
    out[name] = (await t.evaluate(test)).accuracy;
    if (name === 'batchNorm') {
      const model = t.model.layersModel!;
      out.batchNormWithBatchStatistics = tf.tidy(() => {
        const logits = model.apply(test.x, { training: true }) as tf.Tensor;
        return tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), test.y), 'float32')).dataSync()[0];
      });
    }
    t.dispose();
  }
  train.dispose();
  test.dispose();
  return out;
}

export async function run(args: string[]): Promise<void> {
  const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 7);
  const withAccuracy = !args.includes('--no-accuracy');
  const backend = await selectBackend((process.env.TAPFIT_BACKEND as 'auto') ?? 'auto');
  console.log(`${rounds} interleaved rounds; batch ${BATCH} x ${STEPS} steps, batch 1 x ${STEPS * 2} steps`);
  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const { timing, perSample } = await speed(c, rounds);
    const acc = withAccuracy ? await accuracy(c) : undefined;
    results[c.name] = {
      msPerStep: Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, round(v.msPerStep, 3)])),
      msPerSample: Object.fromEntries(Object.entries(perSample).map(([k, v]) => [k, round(v, 4)])),
      samples: timing,
      testAccuracyAfterOneEpoch: acc,
    };
    rows.push({
      model: c.name,
      'BN ms/sample (b32)': round(perSample.batchNorm, 3),
      'ON ms/sample (b32)': round(perSample.onlineNorm, 3),
      'ON-ls ms/sample (b32)': round(perSample.onlineNormLs, 3),
      'ON ms/sample (b1)': round(perSample.onlineNormBatch1, 3),
      ...(acc ? { 'BN acc': round(acc.batchNorm, 4), 'BN acc (batch stats)': round(acc.batchNormWithBatchStatistics, 4), 'ON acc': round(acc.onlineNorm, 4) } : {}),
    });
    targets.push(target(`${c.name}: OnlineNorm / BatchNorm per-sample step time at batch ${BATCH}`, perSample.onlineNorm / perSample.batchNorm, 'max', 1.3));
  }
  console.table(rows);
  writeResults('onlinenorm', { backend: backend.name, batch: BATCH, stepsPerRound: STEPS, rounds, results }, targets);
}
