import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { DataSource } from '../data/data-source';
import { Stage } from '../hooks/order';
import { validatePlugin } from '../plugin/registry';
import type { TapfitPlugin } from '../plugin/types';
import { Trainer, type TrainerOptions } from '../train/trainer';
import { blobData, noopPlugin, testTrainer, testTrainerOptions } from './fixtures';

export interface ConformanceSpec {
  /** A fresh plugin instance on every call. */
  plugin: () => TapfitPlugin;
  /**
   * Trainer options the plugin needs, fresh on every call (a new, identically
   * initialised model each time). Default: the kit's tiny MLP with SGD + momentum.
   */
  trainer?: () => Partial<TrainerOptions>;
  /** Training data, fresh on every call. Default: 64 blob samples (4 features, 3 classes). */
  data?: () => DataSource & { dispose?(): void };
  /** A probe batch to compare models on. Default: 8 ones-and-ramps rows shaped like the data. */
  probe?: () => tf.Tensor;
  batchSize?: number;
  epochs?: number;
  /**
   * Options that do what the plugin does without the plugin (its functional twin, e.g. a
   * model already transformed by `applyX(model)`, or an optimizer chain with the
   * plugin's transform). Training with them must give the same predictions.
   */
  twin?: () => Partial<TrainerOptions>;
  /** Max |difference| allowed between twin and hook form (0 = bitwise). Default 1e-6. */
  twinTolerance?: number;
}

export interface ConformanceCheck {
  name: string;
  run(): Promise<void>;
}

function fail(check: string, why: string): never {
  throw new TapfitError(ErrorCodes.CHECK, `conformance: ${check}: ${why}`);
}

async function train(spec: ConformanceSpec, plugins: TapfitPlugin[], extra: Partial<TrainerOptions> = {}, stopAt?: number) {
  const data = spec.data?.() ?? blobData(64);
  const base = { ...(spec.trainer?.() ?? {}), ...extra };
  const stopper: TapfitPlugin[] = stopAt === undefined ? [] : [{ name: 'conformance-stop', core: '*', apply: ({ hooks, trainer }) => hooks.batchEnd.tap({ stage: Stage.LAST }, () => void (trainer.step >= stopAt && holder.t!.stop())) }];
  const holder: { t?: Trainer } = {};
  const trainer = testTrainer({ ...base, plugins: [...(base.plugins ?? []), ...plugins, ...stopper] });
  holder.t = trainer;
  await trainer.fit(data, { epochs: spec.epochs ?? 2, batchSize: spec.batchSize ?? 8 });
  return { trainer, data };
}

function predictions(spec: ConformanceSpec, trainer: Trainer, data: DataSource): Float32Array {
  const xShape = data.xShape ?? [4];
  const probe = spec.probe?.() ?? tf.tidy(() => tf.add(tf.ones([8, ...xShape]), tf.reshape(tf.linspace(-1, 1, 8 * xShape.reduce((a, b) => a * b, 1)), [8, ...xShape])));
  const y = trainer.predict(probe);
  const out = y.dataSync() as Float32Array;
  tf.dispose([probe, y]);
  return Float32Array.from(out);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}

function cleanup(...runs: { trainer: Trainer; data: { dispose?(): void } }[]): void {
  for (const r of runs) {
    r.trainer.dispose();
    r.data.dispose?.();
  }
}

/**
 * The checks every plugin should pass (the optax `_common_test.py` idea). Each returns
 * a list you can run with any test framework; `describeConformance` registers them
 * with mocha.
 */
export function conformanceChecks(spec: ConformanceSpec): ConformanceCheck[] {
  const name = spec.plugin().name;
  const checks: ConformanceCheck[] = [
    {
      name: 'registers cleanly and appears in describe()',
      async run() {
        const p = spec.plugin();
        validatePlugin(p);
        const t = testTrainer({ ...(spec.trainer?.() ?? {}), plugins: [p] });
        await t.setup();
        const d = t.describe({ print: false });
        if (!d.plugins.includes(name)) fail(this.name, `describe() lists ${JSON.stringify(d.plugins)}, not '${name}'`);
        t.dispose();
      },
    },
    {
      name: "composes with the core's no-op plugins without changing results",
      async run() {
        const alone = await train(spec, [spec.plugin()]);
        const mixed = await train(spec, [noopPlugin('noop-first', Stage.FIRST), spec.plugin(), noopPlugin('noop-last', Stage.LAST)]);
        const diff = maxAbsDiff(predictions(spec, alone.trainer, alone.data), predictions(spec, mixed.trainer, mixed.data));
        cleanup(alone, mixed);
        if (diff !== 0) fail(this.name, `predictions differ by ${diff} when composed with no-op plugins`);
      },
    },
    {
      name: 'state round-trips through a checkpoint (resume equals straight through)',
      async run() {
        const straight = await train(spec, [spec.plugin()]);
        const total = straight.trainer.step;
        const cut = Math.max(1, Math.floor(total / 2) - 1);
        const first = await train(spec, [spec.plugin()], {}, cut);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-conformance-'));
        await first.trainer.save(dir);
        const base = spec.trainer?.() ?? {};
        const resumed = await Trainer.resume(dir, testTrainerOptions({ ...base, plugins: [...(base.plugins ?? []), spec.plugin(), { name: 'conformance-stop', core: '*', apply() {} }] }));
        const data = spec.data?.() ?? blobData(64);
        await resumed.fit(data, { epochs: spec.epochs ?? 2, batchSize: spec.batchSize ?? 8 });
        const diff = maxAbsDiff(predictions(spec, straight.trainer, straight.data), predictions(spec, resumed, data));
        cleanup(straight, first, { trainer: resumed, data });
        fs.rmSync(dir, { recursive: true, force: true });
        if (resumed.step !== total) fail(this.name, `resumed run ended at step ${resumed.step}, straight run at ${total}`);
        if (diff !== 0) fail(this.name, `resumed predictions differ from straight-through ones by ${diff}`);
      },
    },
    {
      name: 'leaks no tensors over 100 steps',
      async run() {
        const data = spec.data?.() ?? blobData(64);
        const t = testTrainer({ ...(spec.trainer?.() ?? {}), plugins: [...(spec.trainer?.().plugins ?? []), spec.plugin()] });
        const batchSize = spec.batchSize ?? 8;
        const perEpoch = Math.ceil((data.size ?? 64) / batchSize);
        await t.fit(data, { epochs: 1, batchSize });
        const before = tf.memory().numTensors;
        await t.fit(data, { epochs: 1 + Math.ceil(100 / perEpoch), batchSize });
        const growth = tf.memory().numTensors - before;
        cleanup({ trainer: t, data });
        if (growth !== 0) fail(this.name, `${growth} tensor(s) leaked over ${Math.ceil(100 / perEpoch) * perEpoch} steps`);
      },
    },
  ];
  if (spec.twin) {
    checks.push({
      name: 'functional twin equals the hook form',
      async run() {
        const hooked = await train(spec, [spec.plugin()]);
        const twin = await train(spec, [], spec.twin!());
        const diff = maxAbsDiff(predictions(spec, hooked.trainer, hooked.data), predictions(spec, twin.trainer, twin.data));
        cleanup(hooked, twin);
        const tol = spec.twinTolerance ?? 1e-6;
        if (!(diff <= tol)) fail(this.name, `predictions differ by ${diff} (tolerance ${tol})`);
      },
    });
  }
  return checks;
}

/** Registers the conformance checks as a mocha `describe` block. */
export function describeConformance(spec: ConformanceSpec, options: { backend?: string } = {}): void {
  const checks = conformanceChecks(spec);
  describe(`tapfit conformance: ${checks.length ? spec.plugin().name : ''}`, () => {
    before(async () => {
      await tf.setBackend(options.backend ?? 'cpu');
      await tf.ready();
    });
    for (const c of checks) it(c.name, () => c.run());
  });
}
