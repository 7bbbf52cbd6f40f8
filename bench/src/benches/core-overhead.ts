import * as tf from '@tensorflow/tfjs';
import { noopPlugin } from '@tapfit/core/testing';
import { SilentLogger, selectBackend, sgd, tensorData, Trainer, type TapfitPlugin } from '@tapfit/core';
import { mlp, mnistCnn } from '@tapfit/examples';
import { round, target, writeResults, type Target } from '../results';
import { interleave, pairedRatio, type PairedRatio } from '../lib/timing';

const LR = 0.01;
const STEPS = 20;

interface Case {
  name: string;
  batch: number;
  xShape: number[];
  build: () => tf.LayersModel;
}

const cases: Case[] = [
  { name: 'mlp', batch: 128, xShape: [784], build: () => mlp({ seed: 1 }) },
  { name: 'cnn', batch: 64, xShape: [28, 28, 1], build: () => mnistCnn({ seed: 1 }) },
];

const softmaxCE = (y: tf.Tensor, p: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, p) as tf.Scalar;

async function measure(c: Case, rounds: number) {
  const n = c.batch * STEPS;
  const x = tf.randomNormal([n, ...c.xShape], 0, 1, 'float32', 1);
  const y = tf.oneHot(tf.randomUniform([n], 0, 10, 'int32', 2), 10);
  const data = tensorData(x, y);

  const tapfit = async (plugins: TapfitPlugin[]) => {
    const t = new Trainer({ model: c.build(), loss: softmaxCE, optimizer: sgd({ lr: LR }), logger: new SilentLogger(), plugins });
    await t.setup();
    return async () => {
      await t.fit(data, { epochs: 1, batchSize: c.batch, shuffle: false });
      return STEPS;
    };
  };

  // The hand-written loop gets its batches pre-cut (zero data cost): the strictest baseline.
  const handModel = c.build();
  const handOpt = tf.train.sgd(LR);
  const batches = Array.from({ length: STEPS }, (_, i) => [tf.slice(x, i * c.batch, c.batch), tf.slice(y, i * c.batch, c.batch)]);
  const hand = () => {
    for (let i = 0; i < STEPS; i++) {
      tf.tidy(() => {
        const [xb, yb] = batches[i];
        const { grads } = tf.variableGrads(() => softmaxCE(yb, handModel.apply(xb, { training: true }) as tf.Tensor));
        handOpt.applyGradients(grads);
      });
    }
    return STEPS;
  };

  const fitModel = c.build();
  fitModel.compile({ optimizer: tf.train.sgd(LR), loss: softmaxCE });
  const layersFit = async () => {
    await fitModel.fit(x, y, { batchSize: c.batch, epochs: 1, shuffle: false, verbose: 0 });
    return STEPS;
  };

  // The same options on both sides: accuracy computed per step, the last 20 % held out and
  // evaluated at the epoch end (tapfit: on the device, one read-back per epoch for each).
  const SPLIT = 0.2;
  const trainSteps = Math.ceil((n * (1 - SPLIT)) / c.batch);
  const tapfitWithMetrics = new Trainer({ model: c.build(), loss: softmaxCE, optimizer: sgd({ lr: LR }), metrics: ['accuracy'], logger: new SilentLogger() });
  await tapfitWithMetrics.setup();
  const tapfitMetricsSplit = async () => {
    await tapfitWithMetrics.fit(x, y, { epochs: 1, batchSize: c.batch, shuffle: false, validationSplit: SPLIT, verbose: 0 });
    return trainSteps;
  };
  const fitModelWithMetrics = c.build();
  fitModelWithMetrics.compile({ optimizer: tf.train.sgd(LR), loss: softmaxCE, metrics: ['accuracy'] });
  const layersFitMetricsSplit = async () => {
    await fitModelWithMetrics.fit(x, y, { batchSize: c.batch, epochs: 1, shuffle: false, validationSplit: SPLIT, verbose: 0 });
    return trainSteps;
  };

  const noops = Array.from({ length: 10 }, (_, i) => noopPlugin(`noop-${i}`));
  const timing = await interleave(
    {
      tapfit: await tapfit([]),
      hand,
      layersFit,
      tapfit10noop: await tapfit(noops),
      tapfitMetricsSplit,
      layersFitMetricsSplit,
    },
    rounds,
  );
  data.dispose();
  tapfitWithMetrics.dispose();
  tf.dispose(batches.flat());
  return timing;
}

/**
 * What 10 no-op plugins add to a step, measured where nothing else hides it: a 4-4 dense
 * model at batch 4 (a step of a fraction of a millisecond), 500 steps a round, paired
 * rounds. The difference is the hooks' own cost (dispatch and per-tap checks); divided by
 * a case's step time it says what the ratio target can at most see.
 */
async function noopDispatchMicros(rounds: number): Promise<{ plainUs: number; withNoopsUs: number; addedUs: number; rounds: number }> {
  const SAMPLES = 2000;
  const BATCH = 4;
  const x = tf.randomNormal([SAMPLES, 4], 0, 1, 'float32', 3);
  const y = tf.randomNormal([SAMPLES, 4], 0, 1, 'float32', 4);
  const data = tensorData(x, y);
  const trainer = (plugins: TapfitPlugin[]) =>
    new Trainer({ model: tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [4] })] }), loss: 'meanSquaredError', optimizer: sgd({ lr: LR }), logger: new SilentLogger(), nonFinite: 'off', plugins });
  const plain = trainer([]);
  const withNoops = trainer(Array.from({ length: 10 }, (_, i) => noopPlugin(`noop-${i}`)));
  const epoch = (t: Trainer) => async () => {
    await t.fit(data, { epochs: 1, batchSize: BATCH, shuffle: false });
    return SAMPLES / BATCH;
  };
  const t = await interleave({ plain: epoch(plain), withNoops: epoch(withNoops) }, rounds);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const diffs = t.plain.samples.map((p, i) => t.withNoops.samples[i] - p);
  plain.dispose();
  withNoops.dispose();
  data.dispose();
  tf.dispose([x, y]);
  return { plainUs: round(med(t.plain.samples) * 1000, 1), withNoopsUs: round(med(t.withNoops.samples) * 1000, 1), addedUs: round(med(diffs) * 1000, 1), rounds };
}

/**
 * tapfit against a hand-written loop and model.fit, on an MLP and the CNN:
 *
 *   npm run bench -- core-overhead [rounds=30]
 *
 * Each round runs every variant once (20 steps), the order reversed every other round;
 * each target is the median over rounds of the per-round ratio (paired: both sides ran
 * moments apart), with its spread [min, max] in the JSON.
 */
export async function run(args: string[]): Promise<void> {
  // 30 rounds: with 15, one CNN round's ratio varies by about ±10% on the 2-vCPU VM and the
  // median moved by ±0.02 between consecutive runs, the width of the tightest target.
  const rounds = Number(args[0] ?? 30);
  const backend = await selectBackend();
  console.log(`${rounds} interleaved rounds of ${STEPS} steps (${backend.reason})`);
  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const t = await measure(c, rounds);
    const ratios: Record<string, PairedRatio> = {};
    const cpuRatios: Record<string, PairedRatio> = {};
    const r = (a: string, b: string) => {
      cpuRatios[`${a} / ${b}`] = pairedRatio(t[a].cpuSamples, t[b].cpuSamples);
      return (ratios[`${a} / ${b}`] = pairedRatio(t[a].samples, t[b].samples)).median;
    };
    rows.push({ model: c.name, ...Object.fromEntries(Object.entries(t).map(([k, v]) => [`${k} ms`, round(v.msPerStep, 2)])) });
    targets.push(target(`${c.name}: tapfit / hand-written loop step time`, r('tapfit', 'hand'), 'max', 1.03));
    targets.push(target(`${c.name}: tapfit / tfjs-layers model.fit step time`, r('tapfit', 'layersFit'), 'max', 1.0));
    targets.push(target(`${c.name}: tapfit with 10 no-op plugins / tapfit`, r('tapfit10noop', 'tapfit'), 'max', 1.02));
    targets.push(target(`${c.name}: tapfit / model.fit step time, both with metrics ['accuracy'] and validationSplit 0.2`, r('tapfitMetricsSplit', 'layersFitMetricsSplit'), 'max', 1.0));
    results[c.name] = { batch: c.batch, msPerStep: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, round(v.msPerStep, 3)])), pairedRatios: ratios, cpuTimePairedRatios: cpuRatios, samples: t };
    const show = (rs: Record<string, PairedRatio>) => Object.entries(rs).map(([k, v]) => `${k} ${v.median} [${v.min}, ${v.max}]`).join('; ');
    console.log(`${c.name} (wall clock): ${show(ratios)}\n${c.name} (CPU time): ${show(cpuRatios)}`);
  }
  console.table(rows);
  const dispatch = await noopDispatchMicros(20);
  const share = Object.fromEntries(rows.map((row) => [row.model as string, round(dispatch.addedUs / 1000 / (row['tapfit ms'] as number), 5)]));
  console.log(`10 no-op plugins add ${dispatch.addedUs} us per step (tiny model: ${dispatch.plainUs} -> ${dispatch.withNoopsUs} us): ${Object.entries(share).map(([m, f]) => `${round(f * 100, 3)} % of a ${m} step`).join(', ')}`);
  writeResults('core-overhead', {
    command: `npm run bench -- core-overhead${args.length ? ` ${args.join(' ')}` : ''}`,
    backend: backend.reason,
    stepsPerRound: STEPS,
    rounds,
    notes: [
      'targets: median over rounds of per-round wall-clock ratios (variants interleaved, order reversed every other round); pairedRatios hold the spread',
      'cpuTimePairedRatios: the same ratios in CPU time of the process; with one wasm thread that is the work done, which other jobs on the machine inflate far less than wall-clock time',
      'noopDispatch: what 10 no-op plugins add per step, measured on a tiny model (paired rounds, median difference); shareOfStep: that time over each case\'s tapfit step time, the part of the 10-no-op ratio that is not noise',
    ],
    results,
    noopDispatch: { ...dispatch, shareOfStep: share },
  }, targets);
}
