import * as tf from '@tensorflow/tfjs';
import {
  ErrorCodes,
  parseOptions,
  Stage,
  TapfitError,
  trainableVariables,
  type NamedTensors,
  type PluginApi,
  type PluginState,
  type TapfitPlugin,
  type TrainerView,
} from '@tapfit/core';
import { z } from 'zod';
import { checkDelay, GradientDelay } from './gradient-delay';

export const DELAY_PLUGIN = 'delayed-gradients';

export interface DelayedGradientsOptions {
  /** D: the gradient applied at a step was computed on the weights of D steps earlier. */
  delay: number;
}

/** The plugin plus what its owner may want: the queue, and freeing it. */
export interface DelayedGradientsPlugin extends TapfitPlugin {
  readonly queue: GradientDelay;
  /** Frees the queued gradients (they persist across fit() calls, like the weights). */
  dispose(): void;
}

/**
 * Simulated gradient delay (docs/techniques.md §4.3) through core's `backward` hook: each
 * step's gradient (computed on the current weights) enters a FIFO, and the one computed
 * D steps earlier is applied. Warm-up: the first D steps return null, so the trainer
 * applies no update and counts them in `trainer.skipped`; the optimizer's step count
 * (and any LR schedule) starts at the first applied gradient. Works with any optimizer,
 * transform chain or black-box. The queue is checkpointed (saveState/loadState).
 */
export function delayedGradients(options: DelayedGradientsOptions): DelayedGradientsPlugin {
  // Optional in the schema so that a missing delay gets checkDelay's message (the number it needs), not zod's.
  const { delay } = parseOptions(DELAY_PLUGIN, z.strictObject({ delay: z.unknown().optional() }), options);
  const queue = new GradientDelay(checkDelay(DELAY_PLUGIN, delay));
  let trainer: TrainerView | undefined;
  return {
    name: DELAY_PLUGIN,
    core: '^0.1.0',
    queue,
    apply(api: PluginApi) {
      // Core gives an instance to one live trainer at a time (a second is refused, naming the
      // plugin the user passed: this one, or 'brakes'); once that trainer is disposed, failed
      // to build or failed to resume, the instance serves a new one, starting with an empty queue.
      queue.dispose();
      trainer = api.trainer;
      // PREPARE: later backward taps (clipping, masks) act on the gradient being applied.
      api.hooks.backward.tap({ name: DELAY_PLUGIN, stage: Stage.PREPARE }, (grads) => (grads === null ? null : queue.push(grads)));
    },
    saveState: () => saveQueue(queue, parameterNames(trainer)),
    checkState: (state: PluginState) => void readQueue(state, queue.delay, trainer),
    loadState(state: PluginState) {
      try {
        queue.restore(readQueue(state, queue.delay, trainer));
      } catch (err) {
        tf.dispose(Object.values(state.tensors ?? {})); // they were handed to us
        throw err;
      }
    },
    dispose: () => queue.dispose(),
  };
}

// Checkpoint layout: json { delay, params, slots }, tensors '<slot>:<param index>', so a
// resumed model whose variables got other names (tfjs numbers them per process) still maps.

interface SavedQueue {
  delay: number;
  params: string[];
  slots: number;
}

function parameterNames(trainer: TrainerView | undefined): string[] {
  return trainer ? trainableVariables(trainer.model).map((v) => v.name) : [];
}

function saveQueue(queue: GradientDelay, params: string[]): PluginState {
  const tensors: Record<string, tf.Tensor> = {};
  queue.pending.forEach((grads, slot) => {
    for (const [name, t] of Object.entries(grads)) {
      const i = params.indexOf(name);
      if (i < 0) throw new TapfitError(ErrorCodes.STATE, `${DELAY_PLUGIN}: a queued gradient is for '${name}', which is not a trainable variable of the model.`);
      tensors[`${slot}:${i}`] = t;
    }
  });
  const json: SavedQueue = { delay: queue.delay, params, slots: queue.pending.length };
  return { json, tensors };
}

const savedSchema = z.object({ delay: z.number().int(), params: z.array(z.string()), slots: z.number().int().min(0) });

function readQueue(state: PluginState, delay: number, trainer: TrainerView | undefined): NamedTensors[] {
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${DELAY_PLUGIN}: cannot restore the gradient queue: ${why}`);
  };
  const parsed = savedSchema.safeParse(state.json);
  if (!parsed.success) return fail('its saved description is malformed; was it written by this plugin?');
  const saved = parsed.data;
  if (saved.delay !== delay) fail(`it was saved with delay ${saved.delay} but this plugin has delay ${delay}; resume with delay ${saved.delay}.`);
  const vars = trainer ? trainableVariables(trainer.model) : [];
  if (vars.length !== saved.params.length) fail(`it holds gradients for ${saved.params.length} parameters but the model has ${vars.length}; resume with the saved architecture.`);
  const entries: NamedTensors[] = Array.from({ length: saved.slots }, () => ({}));
  for (const [key, t] of Object.entries(state.tensors ?? {})) {
    const [slot, i] = key.split(':').map(Number);
    if (!(slot >= 0 && slot < saved.slots && vars[i])) fail(`unexpected entry '${key}'.`);
    const v = vars[i];
    if (t.shape.length !== v.shape.length || t.shape.some((d, k) => d !== v.shape[k])) {
      fail(`the gradient for parameter ${i} ('${saved.params[i]}') has shape [${t.shape}] but '${v.name}' is [${v.shape}].`);
    }
    entries[slot][v.name] = t;
  }
  return entries;
}
