import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { DataSource } from '../data/data-source';
import { Stage } from '../hooks/order';
import { modelVariables } from '../model/trainable-model';
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

/**
 * The plugin's saveState() as comparable text: JSON and each tensor's dtype, shape and
 * values. Names tfjs numbers per model instance (variables, layers) are replaced by their
 * position, so two trainers of identically built models compare equal.
 */
function pluginStateOf(trainer: Trainer, name: string): { json: string; tensors: Record<string, string> } | undefined {
  const plugin = trainer.plugins.find((p) => p.name === name);
  if (!plugin?.saveState) return undefined;
  const positions = new Map<string, string>();
  modelVariables(trainer.model).forEach((v, i) => positions.set(v.name, `<variable ${i}>`));
  trainer.model.layersModel?.layers.forEach((l, i) => positions.set(l.name, `<layer ${i}>`));
  const rename = (s: string) => positions.get(s) ?? s;
  const plain = (v: unknown): unknown => {
    if (typeof v === 'string') return rename(v);
    if (Array.isArray(v)) return v.map(plain);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [rename(k), plain(x)]));
    return v;
  };
  const s = plugin.saveState();
  const tensors: Record<string, string> = {};
  for (const [k, t] of Object.entries(s.tensors ?? {})) tensors[rename(k)] = `${t.dtype}[${t.shape}] ${Array.from(t.dataSync()).join(',')}`;
  return { json: JSON.stringify(plain(s.json ?? null)), tensors };
}

/** Where two plugin states differ, or undefined when they are equal. */
function stateDifference(a: ReturnType<typeof pluginStateOf>, b: ReturnType<typeof pluginStateOf>): string | undefined {
  if (!a || !b) return a === b ? undefined : 'one trainer has no saveState()';
  if (a.json !== b.json) return `json ${b.json.slice(0, 200)} instead of ${a.json.slice(0, 200)}`;
  for (const k of new Set([...Object.keys(a.tensors), ...Object.keys(b.tensors)])) {
    if (a.tensors[k] !== b.tensors[k]) return `tensor '${k}' is ${b.tensors[k]?.slice(0, 200) ?? 'missing'} instead of ${a.tensors[k]?.slice(0, 200) ?? 'missing'}`;
  }
  return undefined;
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
      name: 'registers cleanly under a kebab-case name and appears in describe()',
      async run() {
        const p = spec.plugin();
        validatePlugin(p);
        if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(p.name)) fail(this.name, `the name '${p.name}' is not kebab-case (e.g. 'online-norm'): names key checkpoint state, ordering and errors`);
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
        // The plugin's own state must come back too, not only what shows in predictions.
        const atCut = stateDifference(pluginStateOf(first.trainer, name), pluginStateOf(resumed, name));
        await resumed.fit(data, { epochs: spec.epochs ?? 2, batchSize: spec.batchSize ?? 8 });
        const diff = maxAbsDiff(predictions(spec, straight.trainer, straight.data), predictions(spec, resumed, data));
        const atEnd = stateDifference(pluginStateOf(straight.trainer, name), pluginStateOf(resumed, name));
        cleanup(straight, first, { trainer: resumed, data });
        fs.rmSync(dir, { recursive: true, force: true });
        if (resumed.step !== total) fail(this.name, `resumed run ended at step ${resumed.step}, straight run at ${total}`);
        if (diff !== 0) fail(this.name, `resumed predictions differ from straight-through ones by ${diff}`);
        if (atCut) fail(this.name, `the plugin's saveState() right after resume differs from the saved trainer's at step ${cut}: ${atCut}. Does loadState restore everything saveState returns?`);
        if (atEnd) fail(this.name, `the plugin's saveState() after the resumed run differs from the straight-through run's at step ${total}: ${atEnd}`);
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
        await t.fit(data, { epochs: Math.ceil(100 / perEpoch), batchSize });
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
