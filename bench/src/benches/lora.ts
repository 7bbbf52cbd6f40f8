import * as tf from '@tensorflow/tfjs';
import { adam, selectBackend, SilentLogger, TensorData, Trainer, type TapfitPlugin } from '@tapfit/core';
import { loadMnist } from '@tapfit/examples';
import { analyzeUpdate, formatAnalysis, lora, type UpdateAnalysis } from '@tapfit/plugin-lora';
import { fashionSplits } from '../lib/fashion-mnist';
import { blockRatio, interleave, pairedRatio } from '../lib/timing';
import { median, round, target, writeResults, type Target } from '../results';

/**
 * "LoRA learns less and forgets less" in miniature: an MLP 784-512-512-10 pretrained on
 * MNIST digits (source task) is finetuned on Fashion-MNIST (target task) in full and
 * with LoRA at several ranks (alpha = 2r on both hidden layers, the classifier head
 * trained in full as modulesToSave, LoRA lr = 10x the full-FT lr), for the same steps.
 * The finetuning epochs of all variants run interleaved, so their step times are
 * measured side by side. Reports target and source accuracy, trainable parameters,
 * optimizer-state bytes, step time, rank90 of the full-FT update per layer, and merged
 * inference time against the base model.
 *
 * Source accuracy is reported twice: through the finetuned head (which now maps
 * Fashion classes) and through the pretrained head (how far the features drifted).
 *
 * `npm run bench -- lora [epochs] [--quick]` (default 4 epochs; the first is the
 * untimed warm-up round)
 */

const BATCH = 128;
const FULL_LR = 5e-4;
const LORA_LR = 5e-3;
const RANKS = [1, 4, 8, 16, 64];

function mlp(seed: number): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed * 10 + k });
  return tf.sequential({
    name: 'mlp',
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [784], units: 512, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ name: 'fc2', units: 512, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({ name: 'head', units: 10, kernelInitializer: init(3) }),
    ],
  });
}

/** Fashion-MNIST: the first nTrain images of a seeded permutation for training, the next nTest for testing. */
function loadFashion(nTrain: number, nTest: number, seed: number): { train: TensorData; test: TensorData } {
  const [train, test] = fashionSplits([nTrain, nTest], seed);
  return { train, test };
}

function trainer(model: tf.LayersModel, lr: number, plugins: TapfitPlugin[] = []): Trainer {
  return new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: adam({ lr }), metrics: ['accuracy'], logger: new SilentLogger(), plugins, seed: 1 });
}

/** Bytes of every tensor in the optimizer's state (Adam: first and second moments). */
function stateBytes(state: unknown): number {
  if (state instanceof tf.Tensor) return state.size * 4;
  if (state && typeof state === 'object') return Object.values(state).reduce((a: number, v) => a + stateBytes(v), 0);
  return 0;
}

/** Accuracy of `model` on `data` in one pass. */
function accuracyOf(model: tf.LayersModel, data: TensorData): number {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(model.predict(data.x) as tf.Tensor, -1), data.y), 'float32')).dataSync()[0]);
}

function copyOf(model: tf.LayersModel): tf.LayersModel {
  const m = mlp(1);
  m.setWeights(model.getWeights());
  return m;
}

interface Variant {
  name: string;
  rank: number | null;
  trainer: Trainer;
  plugin?: ReturnType<typeof lora>;
}

/** `reps` predictions of `x` by `m`, read back: one timed call (returns how many it ran). */
const predicting = (m: tf.LayersModel, x: tf.Tensor, reps: number) => () => {
  for (let i = 0; i < reps; i++) tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync());
  return reps;
};

/** Median ms of `fn` per call for each variant, interleaved. */
async function inferenceTime(models: Record<string, tf.LayersModel>, x: tf.Tensor, rounds: number, reps: number) {
  const variants = Object.fromEntries(Object.entries(models).map(([k, m]) => [k, predicting(m, x, reps)]));
  return interleave(variants, rounds, 2);
}

export async function run(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const epochs = Number(args.find((a) => /^\d+$/.test(a)) ?? (quick ? 2 : 4));
  const backend = await selectBackend((process.env.TAPFIT_BACKEND as 'auto') ?? 'auto');
  const nTrain = quick ? 2048 : 10000;

  const mnist = loadMnist({ train: quick ? 2048 : 8000, test: 2000, layout: 'flat', seed: 1 });
  const fashion = loadFashion(nTrain, 2000, 1);

  // 1. Pretrain on MNIST.
  const base = mlp(1);
  const pre = trainer(base, 1e-3);
  await pre.fit(mnist.train, { epochs: quick ? 1 : 3, batchSize: BATCH });
  const baseline = { sourceAcc: accuracyOf(base, mnist.test), targetAcc: accuracyOf(base, fashion.test) };
  pre.dispose();
  console.log(`pretrained on MNIST: source acc ${round(baseline.sourceAcc, 4)}, target (Fashion) acc before finetuning ${round(baseline.targetAcc, 4)}`);

  // 2. Finetune every variant on Fashion-MNIST, epochs interleaved.
  const variants: Variant[] = [{ name: 'full', rank: null, trainer: trainer(copyOf(base), FULL_LR) }];
  for (const r of RANKS) {
    const plugin = lora({ targets: 'all-linear', rank: r, alpha: 2 * r, modulesToSave: 'head', seed: r });
    variants.push({ name: `lora-r${r}`, rank: r, plugin, trainer: trainer(base, LORA_LR, [plugin]) });
  }
  for (const v of variants) await v.trainer.setup();
  const steps = Math.ceil(nTrain / BATCH);
  const timing = await interleave(
    Object.fromEntries(
      variants.map((v) => [
        v.name,
        async () => {
          await v.trainer.fit(fashion.train, { epochs: 1, batchSize: BATCH });
          return steps;
        },
      ]),
    ),
    epochs - 1,
    1, // the first epoch is the warm-up round: it trains but is not timed
  );

  const rows: Record<string, unknown>[] = [];
  const results: Record<string, Record<string, unknown>> = {};
  for (const v of variants) {
    const targetAcc = (await v.trainer.evaluate(fashion.test)).acc;
    const sourceAcc = (await v.trainer.evaluate(mnist.test)).acc;
    // Source accuracy through the pretrained head: how far the hidden features drifted,
    // without the (retrained) head's class remapping.
    const plain = v.plugin ? v.plugin.lora.unload() : copyOf(v.trainer.model.layersModel!);
    plain.getLayer('head').setWeights(base.getLayer('head').getWeights());
    const sourceAccPretrainedHead = accuracyOf(plain, mnist.test);
    plain.dispose();
    const trainableParams = v.trainer.describe({ print: false }).trainableParams;
    const optimizerStateBytes = stateBytes(v.trainer.optimizerState);
    results[v.name] = { rank: v.rank, targetAcc, sourceAcc, sourceAccPretrainedHead, trainableParams, optimizerStateBytes, msPerStep: timing[v.name].msPerStep, msPerStepSamples: timing[v.name].samples };
    rows.push({ variant: v.name, 'target acc': round(targetAcc, 4), 'source acc': round(sourceAcc, 4), 'source acc (pretrained head)': round(sourceAccPretrainedHead, 4), 'trainable params': trainableParams, 'opt-state bytes': optimizerStateBytes, 'ms/step': round(timing[v.name].msPerStep, 2) });
  }
  console.table(rows);

  // 3. Spectra: the full-FT update against the rank-8 LoRA update.
  const full = variants[0].trainer.model.layersModel!;
  const r8 = variants.find((v) => v.rank === 8)!.plugin!.lora;
  const spectra: Record<string, UpdateAnalysis> = { full: analyzeUpdate(base, full), 'lora-r8': analyzeUpdate(base, r8.model) };
  console.log(`\nfull finetuning update:\n${formatAnalysis(spectra.full)}\n\nLoRA r=8 update:\n${formatAnalysis(spectra['lora-r8'])}`);
  const compact = (a: UpdateAnalysis) =>
    a.layers.map((l) => ({ layer: l.layer, shape: l.shape, rank90: { pre: l.pre.rank, ft: l.ft.rank, delta: l.delta.rank }, relativeUpdate: round(l.relativeUpdate, 5), deltaSingularValuesTop16: l.delta.singularValues.slice(0, 16).map((s) => round(s, 5)) }));

  // 4. Inference: base vs the rank-8 LoRA model merged. The unloaded plain model (the
  // same class as base) is a control for order effects. Rounds interleave the three
  // (order reversed every other round); the ratio is the median of per-round ratios.
  const probe = tf.slice(fashion.test.x, [0, 0], [256, 784]);
  const unloaded = r8.unload();
  r8.merge();
  const inference = await inferenceTime({ base, loraMerged: r8.model, unloaded }, probe, quick ? 20 : 60, 10);
  // The target: each pair on its own in back-to-back blocks (a b b a, then b a a b), as the
  // core-overhead targets; the rounds' ratios above moved by up to 1.4x round to round.
  const blocks = quick ? 10 : 40;
  const mergedBlocks = await blockRatio(predicting(base, probe, 5), predicting(r8.model, probe, 5), blocks);
  const controlBlocks = await blockRatio(predicting(base, probe, 5), predicting(unloaded, probe, 5), blocks);
  r8.unmerge();
  const unmerged = await inferenceTime({ base, loraUnmerged: r8.model }, probe, quick ? 6 : 20, 10);
  probe.dispose();
  unloaded.dispose();
  const merged = pairedRatio(inference.loraMerged.samples, inference.base.samples);
  const control = pairedRatio(inference.unloaded.samples, inference.base.samples);
  const mergedRatio = mergedBlocks.median;
  console.log(
    `inference, batch 256 (blocks, the target): LoRA merged / base x${mergedRatio} [${mergedBlocks.min}, ${mergedBlocks.max}], unloaded plain model / base x${controlBlocks.median} [${controlBlocks.min}, ${controlBlocks.max}]\n` +
      `inference, batch 256 (rounds): base ${round(inference.base.msPerStep, 3)} ms, LoRA merged ${round(inference.loraMerged.msPerStep, 3)} ms (x${merged.median} [${merged.min}, ${merged.max}]), ` +
      `unloaded plain model x${control.median} [${control.min}, ${control.max}], unmerged x${pairedRatio(unmerged.loraUnmerged.samples, unmerged.base.samples).median}`,
  );

  const f = results.full as { trainableParams: number; optimizerStateBytes: number; msPerStep: number };
  const l8 = results['lora-r8'] as typeof f;
  const targets: Target[] = [
    target('LoRA r=8 trainable params / full FT', l8.trainableParams / f.trainableParams, 'max', 1 / 20),
    target('LoRA r=8 optimizer-state bytes / full FT', l8.optimizerStateBytes / f.optimizerStateBytes, 'max', 1 / 20),
    target('LoRA r=8 step time / full FT (paired epochs, median)', pairedRatio(timing['lora-r8'].samples, timing.full.samples).median, 'max', 1),
    target('merged LoRA r=8 inference time / base (blocks, median)', mergedRatio, 'max', 1.02),
  ];
  writeResults(
    'lora',
    {
      backend: backend.name,
      settings: { batch: BATCH, epochs, stepsPerEpoch: steps, fullLr: FULL_LR, loraLr: LORA_LR, ranks: RANKS, alpha: '2r', targets: 'all-linear (fc1, fc2) + head in full (modulesToSave)', nTrain, quick },
      pretrained: baseline,
      results,
      rank90: { full: compact(spectra.full), 'lora-r8': compact(spectra['lora-r8']) },
      inference: {
        batch: 256,
        baseMs: inference.base.msPerStep,
        loraMergedMs: inference.loraMerged.msPerStep,
        blocks: { mergedRatio: mergedBlocks, unloadedRatio: controlBlocks, predictsPerFit: 5, order: 'a b b a, then b a a b' },
        mergedRatio: merged,
        unloadedRatio: control,
        unmergedRatio: pairedRatio(unmerged.loraUnmerged.samples, unmerged.base.samples),
        samples: { inference, unmerged },
      },
      medianEpochMs: Object.fromEntries(variants.map((v) => [v.name, median(timing[v.name].samples) * steps])),
    },
    targets,
  );
  for (const v of variants) v.trainer.dispose();
  mnist.train.dispose();
  mnist.test.dispose();
  fashion.train.dispose();
  fashion.test.dispose();
}
