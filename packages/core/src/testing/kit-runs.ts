import type { DataSource } from '../data/data-source';
import { Stage } from '../hooks/order';
import type { TapfitPlugin } from '../plugin/types';
import { Trainer, type TrainerOptions } from '../train/trainer';
import type { ConformanceSpec } from './conformance-spec';
import { blobData, testTrainerOptions } from './fixtures';
import { disposeTrainerInputs } from './trainer-inputs';

/** What the kit builds for one trainer and owns: its options (from one `spec.trainer()` call) and its data. */
export interface KitInputs {
  options: TrainerOptions;
  data: DataSource & { dispose?(): void };
  /** Disposes the data and the options' model and `tf.train` optimizer (a trainer leaves those to its caller). */
  dispose(): void;
}

/** A trainer the conformance kit built, with the inputs the kit owns for it. */
export interface KitRun {
  trainer: Trainer;
  data: KitInputs['data'];
  /** Disposes the trainer, then its inputs. */
  release(): void;
}

/** The name of the plugin that stops a run early; a resume registers a no-op of that name, so the plugin lists match. */
const STOP_PLUGIN = 'conformance-stop';

/**
 * Inputs from one call of `spec.trainer()` (so model and plugins come from the same call),
 * `extra` over them, and `plugins` added after the spec's own (which may be what they require).
 */
export function kitInputs(spec: ConformanceSpec, plugins: TapfitPlugin[], extra: Partial<TrainerOptions> = {}): KitInputs {
  const base = { ...(spec.trainer?.() ?? {}), ...extra };
  const options = testTrainerOptions({ ...base, plugins: [...(base.plugins ?? []), ...plugins] });
  const data = spec.data?.() ?? blobData(64);
  return {
    options,
    data,
    dispose() {
      disposeTrainerInputs(options);
      data.dispose?.();
    },
  };
}

function kitRun(trainer: Trainer, inputs: KitInputs): KitRun {
  return {
    trainer,
    data: inputs.data,
    release() {
      trainer.dispose();
      inputs.dispose();
    },
  };
}

/** Builds a trainer with `plugins` (neither set up nor trained). */
export function buildRun(spec: ConformanceSpec, plugins: TapfitPlugin[], extra: Partial<TrainerOptions> = {}): KitRun {
  const inputs = kitInputs(spec, plugins, extra);
  return kitRun(new Trainer(inputs.options), inputs);
}

/** Trains a fresh trainer with `plugins` for the spec's epochs (or `epochs`), stopping after step `stopAt` if given. */
export async function trainRun(spec: ConformanceSpec, plugins: TapfitPlugin[], o: { extra?: Partial<TrainerOptions>; stopAt?: number; epochs?: number } = {}): Promise<KitRun> {
  const holder: { trainer?: Trainer } = {};
  const { stopAt } = o;
  const stopper: TapfitPlugin[] =
    stopAt === undefined ? [] : [{ name: STOP_PLUGIN, core: '*', apply: ({ hooks, trainer }) => hooks.batchEnd.tap({ stage: Stage.LAST }, () => void (trainer.step >= stopAt && holder.trainer!.stop())) }];
  const run = buildRun(spec, [...plugins, ...stopper], o.extra);
  holder.trainer = run.trainer;
  try {
    await fitRun(spec, run, o.epochs);
  } catch (err) {
    run.release();
    throw err;
  }
  return run;
}

/** Fits a run's trainer with the spec's batch size, for the spec's epochs (or `epochs`). */
export async function fitRun(spec: ConformanceSpec, run: KitRun, epochs = spec.epochs ?? 2): Promise<void> {
  await run.trainer.fit(run.data, { epochs, batchSize: spec.batchSize ?? 8 });
}

/** Resumes the checkpoint in `dir` with a fresh plugin instance and freshly built options. */
export async function resumeRun(spec: ConformanceSpec, dir: string): Promise<KitRun> {
  const inputs = kitInputs(spec, [spec.plugin(), { name: STOP_PLUGIN, core: '*', apply() {} }]);
  try {
    return kitRun(await Trainer.resume(dir, inputs.options), inputs);
  } catch (err) {
    inputs.dispose(); // a failed resume frees what it built, not what the options hold
    throw err;
  }
}
