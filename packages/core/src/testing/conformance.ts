import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { batchesPerEpoch } from '../data/data-source';
import { ErrorCodes, TapfitError } from '../errors';
import { Stage } from '../hooks/order';
import { jsonProblem, type JsonProblem } from '../checkpoint/plain-json';
import { validatePlugin } from '../plugin/registry';
import type { TapfitPlugin } from '../plugin/types';
import type { ConformanceCheck, ConformanceSpec } from './conformance-spec';
import { blobData, noopPlugin } from './fixtures';
import { buildRun, fitRun, kitInputs, resumeRun, trainRun, type KitRun } from './kit-runs';
import { pluginStateOf, stateDifference, type PluginStateText } from './plugin-state-text';
import { growthAfterWarmup, tensorCountProbe } from './tensor-count-probe';

/** Steps of a fit the leak check lets a plugin build state in before the live tensor count must stay flat. */
const LEAK_WARMUP_STEPS = 5;
const LEAK_STEPS = 100;

function fail(check: string, why: string): never {
  throw new TapfitError(ErrorCodes.CHECK, `conformance: ${check}: ${why}`);
}

function predictions(spec: ConformanceSpec, run: KitRun): Float32Array {
  const xShape = run.data.xShape ?? [4];
  const probe = spec.probe?.() ?? tf.tidy(() => tf.add(tf.ones([8, ...xShape]), tf.reshape(tf.linspace(-1, 1, 8 * xShape.reduce((a, b) => a * b, 1)), [8, ...xShape])));
  const y = run.trainer.predict(probe);
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

/** Batches in one epoch of the spec's data: from its size when known, else counted. */
async function stepsPerEpoch(spec: ConformanceSpec): Promise<number> {
  const data = spec.data?.() ?? blobData(64);
  const batchSize = spec.batchSize ?? 8;
  try {
    const known = batchesPerEpoch(data, batchSize);
    if (known !== undefined) return known;
    let n = 0;
    const it = data.batches({ batchSize, shuffle: false, seed: 0, epoch: 0 });
    for (let r = await it.next(); !r.done; r = await it.next(), n++) tf.dispose([r.value.x, r.value.y]);
    return n;
  } finally {
    data.dispose?.();
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-conformance-'));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A plugin that checks, before the first step and after every step, that `plugin`'s saveState().json is plain JSON; keeps the first problem. */
function plainJsonProbe(plugin: TapfitPlugin): { plugin: TapfitPlugin; found?: { step: number; problem: JsonProblem } } {
  const probe: { plugin: TapfitPlugin; found?: { step: number; problem: JsonProblem } } = {
    plugin: {
      name: 'conformance-json-probe',
      core: '*',
      apply: ({ hooks, trainer }) => {
        const check = (): void => {
          const json = probe.found || !plugin.saveState ? undefined : plugin.saveState().json;
          const problem = json === undefined ? undefined : jsonProblem(json);
          if (problem) probe.found = { step: trainer.step, problem };
        };
        hooks.fitStart.tap({ stage: Stage.LAST }, check);
        hooks.batchEnd.tap({ stage: Stage.LAST }, check);
      },
    },
  };
  return probe;
}

/**
 * One trainer's life with the plugin: build, train, save, dispose; then resume, train on,
 * dispose. Returns the tensors each part left alive (the kit frees the models it built).
 */
async function trainerLife(spec: ConformanceSpec, dir: string): Promise<{ save: number; dispose: number; resume: number }> {
  const count = () => tf.memory().numTensors;
  // What building and freeing the spec's own inputs leaves (a model factory that leaks its
  // initial values) is the spec's doing, not the plugin's: measured, and not counted against it.
  const beforeInputs = count();
  kitInputs(spec, []).dispose();
  const inputsLeft = count() - beforeInputs;

  const beforeBuild = count();
  const run = await trainRun(spec, [spec.plugin()], { epochs: 1 });
  let save: number;
  try {
    const beforeSave = count();
    await run.trainer.save(dir);
    save = count() - beforeSave;
  } finally {
    run.release();
  }
  const beforeResume = count();
  const resumed = await resumeRun(spec, dir);
  try {
    await fitRun(spec, resumed, 2);
  } finally {
    resumed.release();
  }
  return { save, dispose: beforeResume - beforeBuild - save - inputsLeft, resume: count() - beforeResume - inputsLeft };
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
        const run = buildRun(spec, [p]);
        try {
          await run.trainer.setup();
          const d = run.trainer.describe({ print: false });
          if (!d.plugins.includes(name)) fail(this.name, `describe() lists ${JSON.stringify(d.plugins)}, not '${name}'`);
        } finally {
          run.release();
        }
      },
    },
    {
      name: 'trains deterministically (two identical runs give the same predictions)',
      async run() {
        const first = await trainRun(spec, [spec.plugin()]);
        const a = predictions(spec, first);
        first.release();
        const second = await trainRun(spec, [spec.plugin()]);
        const diff = maxAbsDiff(a, predictions(spec, second));
        second.release();
        if (diff !== 0) {
          fail(
            this.name,
            `two identical runs of the plugin alone give predictions that differ by ${diff}: seed every random draw, e.g. from the trainer's seed ` +
              `(tfjs's normal draws read a seed of 0, the trainer's default, as none: add 1), or noise inside a forward with noiseSeed(ctx, name)`,
          );
        }
      },
    },
    {
      name: "composes with the core's no-op plugins without changing results",
      async run() {
        const alone = await trainRun(spec, [spec.plugin()]);
        const alonePredictions = predictions(spec, alone);
        alone.release();
        const mixed = await trainRun(spec, [noopPlugin('noop-first', Stage.FIRST), spec.plugin(), noopPlugin('noop-last', Stage.LAST)]);
        const diff = maxAbsDiff(alonePredictions, predictions(spec, mixed));
        mixed.release();
        if (diff !== 0) fail(this.name, `predictions differ by ${diff} when composed with no-op plugins`);
      },
    },
    {
      name: 'state round-trips through a checkpoint (resume equals straight through)',
      async run() {
        const total = (spec.epochs ?? 2) * (await stepsPerEpoch(spec));
        const cut = Math.max(1, Math.floor(total / 2) - 1);
        await withTempDir(async (dir) => {
          const first = await trainRun(spec, [spec.plugin()], { stopAt: cut });
          let saved: PluginStateText | undefined;
          try {
            await first.trainer.save(dir).catch((err: unknown) => {
              if (err instanceof TapfitError && err.code === ErrorCodes.CHECKPOINT && err.message.includes(`plugin '${name}' saveState()`)) fail(this.name, `saving at step ${cut} was refused: ${err.message}`);
              throw err;
            });
            saved = pluginStateOf(first.trainer, name);
          } finally {
            first.release();
          }
          // A run with another plugin instance between save and resume overwrites state the plugin keeps
          // outside itself (in its module), which a resume in a new process would not find. Its json is
          // checked after every step: a checkpoint may be saved at any of them, not only at the cut.
          const plugin = spec.plugin();
          const probe = plainJsonProbe(plugin);
          const straight = await trainRun(spec, [plugin, probe.plugin]);
          if (probe.found) {
            straight.release();
            const { step, problem } = probe.found;
            fail(
              this.name,
              `after step ${step} the plugin's saveState() returned ${problem.path} = ${problem.what}; a checkpoint saved then is refused (TAPFIT_E_CHECKPOINT), ` +
                `since the resumed plugin would not get back what it saved. The plugin must ${problem.fix}.`,
            );
          }
          const expected = { step: straight.trainer.step, predictions: predictions(spec, straight), state: pluginStateOf(straight.trainer, name) };
          straight.release();
          const resumed = await resumeRun(spec, dir);
          let got;
          try {
            // The plugin's own state must come back too, not only what shows in predictions.
            const atCut = stateDifference(saved, pluginStateOf(resumed.trainer, name));
            await fitRun(spec, resumed);
            got = { step: resumed.trainer.step, atCut, diff: maxAbsDiff(expected.predictions, predictions(spec, resumed)), atEnd: stateDifference(expected.state, pluginStateOf(resumed.trainer, name)) };
          } finally {
            resumed.release();
          }
          if (got.step !== expected.step) fail(this.name, `resumed run ended at step ${got.step}, straight run at ${expected.step}`);
          if (got.diff !== 0) fail(this.name, `resumed predictions differ from straight-through ones by ${got.diff} (the saving trainer was disposed and a straight-through run came between save and resume: is state kept outside the plugin instance, or not saved?)`);
          if (got.atCut) fail(this.name, `the plugin's saveState() right after resume differs from the saved trainer's at step ${cut}: ${got.atCut}. Does loadState restore everything saveState returns?`);
          if (got.atEnd) fail(this.name, `the plugin's saveState() after the resumed run differs from the straight-through run's at step ${expected.step}: ${got.atEnd}`);
        });
      },
    },
    {
      name: `leaks no tensors over ${LEAK_STEPS} steps`,
      async run() {
        const perEpoch = await stepsPerEpoch(spec);
        const epochs = Math.ceil(LEAK_STEPS / perEpoch);
        const probe = tensorCountProbe();
        const run = buildRun(spec, [spec.plugin(), probe.plugin]);
        let growth: number;
        try {
          await fitRun(spec, run, 1); // warm-up: state built lazily, tfjs's own caches
          probe.counts.length = 0;
          const before = tf.memory().numTensors;
          await fitRun(spec, run, epochs);
          growth = tf.memory().numTensors - before;
        } finally {
          run.release();
        }
        const inFit = growthAfterWarmup(probe.counts, LEAK_WARMUP_STEPS);
        if (inFit) {
          fail(this.name, `live tensors rose from ${inFit.from} after step ${LEAK_WARMUP_STEPS} to ${inFit.to} after step ${inFit.step} of one fit: a tensor kept per step grows without bound, even if freed at fitEnd`);
        }
        if (growth !== 0) fail(this.name, `${growth} tensor(s) leaked over ${epochs * perEpoch} steps`);
      },
    },
    {
      name: 'save, resume and dispose leak no tensors',
      async run() {
        const left = await withTempDir(async (dir) => {
          await trainerLife(spec, dir); // warm-up: tfjs's own caches
          return trainerLife(spec, dir);
        });
        const problems = [
          left.save && `save() left ${left.save} tensor(s): saveState() must return tensors the plugin keeps (the core reads them and never frees them)`,
          left.dispose && `a trained trainer left ${left.dispose} tensor(s) after trainer.dispose(): the plugin's dispose() must free every tensor it holds`,
          left.resume && `Trainer.resume, training on and dispose() left ${left.resume} tensor(s): resume calls saveState() (for its undo copy) and hands loadState the saved tensors to own; dispose() frees them`,
        ].filter(Boolean);
        if (problems.length) fail(this.name, problems.join('; '));
      },
    },
  ];
  if (spec.twin) {
    checks.push({
      name: 'functional twin equals the hook form',
      async run() {
        const hooked = await trainRun(spec, [spec.plugin()]);
        const hookedPredictions = predictions(spec, hooked);
        hooked.release();
        const twin = await trainRun(spec, [], { extra: spec.twin!() });
        const diff = maxAbsDiff(hookedPredictions, predictions(spec, twin));
        twin.release();
        const tol = spec.twinTolerance ?? 1e-6;
        if (!(diff <= tol)) fail(this.name, `predictions differ by ${diff} (tolerance ${tol})`);
      },
    });
  }
  return checks;
}

/** Registers the conformance checks as a mocha `describe` block. */
export function describeConformance(spec: ConformanceSpec, options: { backend?: string | undefined } = {}): void {
  const checks = conformanceChecks(spec);
  describe(`tapfit conformance: ${checks.length ? spec.plugin().name : ''}`, () => {
    before(async () => {
      await tf.setBackend(options.backend ?? 'cpu');
      await tf.ready();
    });
    for (const c of checks) it(c.name, () => c.run());
  });
}
