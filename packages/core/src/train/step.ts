import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/data-source';
import type { Hooks } from '../hooks/hooks';
import type { StepInfo } from '../hooks/types';
import type { Segment } from '../model/segment';
import type { Backprop } from '../services/tokens';
import type { MemoryPlan } from '../step/memory-plan';
import type { LossFn } from '../step/step-request';
import { nonFiniteCause, nonFiniteError } from './non-finite';
import type { Penalty } from './regularization';
import type { Stepper } from './stepper';

/** What one training step needs; the trainer builds it once at setup. */
export interface StepParts {
  readonly hooks: Pick<Hooks, 'forward' | 'backward'>;
  readonly backprop: Backprop;
  /** The model's segments (forward taps may wrap them per step). */
  readonly segments: readonly Segment[];
  /** Trainable variables by name: what gets gradients and updates. */
  readonly variables: Readonly<Record<string, tf.Variable>>;
  readonly plan: MemoryPlan;
  readonly loss: LossFn;
  /** The model's weight penalties (tfjs-layers regularizers), added to the loss and its gradients as model.fit does; null when none. */
  readonly penalty: ((variables: readonly tf.Variable[]) => Penalty) | null;
  /** Projects the updated weights that declare constraints (tfjs-layers `kernelConstraint`, ...), as Keras does after each update; null when none or ignored. */
  readonly constrain: ((updated: Readonly<Record<string, unknown>>) => void) | null;
  readonly stepper: Stepper;
  /** What to do with a NaN/Inf loss: refuse the step, skip its update, or not look. */
  readonly nonFinite: 'throw' | 'skip' | 'off';
}

export interface StepOutcome {
  /** The batch loss; the caller disposes it. */
  loss: tf.Scalar;
  /** False when no update was applied (non-finite loss skipped, or a backward tap returned null). */
  applied: boolean;
  /** True when the loss was NaN or infinite and the update was skipped (nonFinite: 'skip'). */
  nonFinite: boolean;
}

/**
 * One training step on one batch, top to bottom, inside one tf.tidy:
 *
 * 1. `forward` taps turn the model's segments and a training context into this step's
 *    forward pass (weights substituted through `ctx.weights`, segments wrapped);
 * 2. the Backprop runs that forward and differentiates the loss (plain autodiff, or the
 *    segment executor realising the memory plan); the model's weight penalties, if it
 *    declares any, are added to the loss and the gradients as model.fit adds them;
 * 3. a non-finite loss stops here (throw, or skip the update; weights that are already
 *    non-finite always throw, since no later step could be applied);
 * 4. `backward` taps map the gradients (delay queues, masks, clipping), each tap's
 *    result checked against the variables; null means "no update this step";
 * 5. the stepper applies them: the same transform path asyncTrain's master uses; weights
 *    with constraints are projected back onto their sets, as Keras does.
 *
 * The batch is disposed whatever happens. `noiseKey` seeds the forward's random draws
 * (`SegmentContext.noiseKey`).
 */
export function trainingStep(parts: StepParts, batch: Batch, info: StepInfo, noiseKey: number): StepOutcome {
  let applied = false;
  let nonFinite = false;
  try {
    const loss = tf.tidy(() => {
      // This step's own copy of the segment list: a tap that edits it in place changes this step only, not the model.
      const pass = parts.hooks.forward.call({ segments: [...parts.segments], ctx: { training: true, recomputing: false, step: info.step, noiseKey } }, info);
      const variables = Object.values(parts.variables);
      const computed = parts.backprop.compute({
        x: batch.x,
        y: batch.y,
        segments: pass.segments,
        ctx: pass.ctx,
        variables,
        plan: parts.plan,
        loss: parts.loss,
      });
      const { value, grads } = parts.penalty ? withPenalty(computed, parts.penalty(variables)) : computed;
      const read = parts.nonFinite === 'off' ? 0 : value.dataSync()[0];
      if (!Number.isFinite(read)) {
        // Failure path only: find out why (the data, or weights an earlier update diverged) to say what helps.
        const cause = nonFiniteCause(batch, variables);
        if (parts.nonFinite === 'throw' || cause.weights.length) throw nonFiniteError(read, info, cause, parts.nonFinite as 'throw' | 'skip');
        nonFinite = true;
        return value;
      }
      const g = parts.hooks.backward.call(grads, info);
      if (g !== null) {
        parts.stepper.apply(g, info.step);
        parts.constrain?.(g);
        tf.dispose(Object.values(g)); // a tap may hand back kept tensors (a delay queue's): the step owns them
        applied = true;
      }
      return value;
    });
    return { loss, applied, nonFinite };
  } finally {
    tf.dispose([batch.x, batch.y]);
  }
}

/** The loss and gradients with the weight penalties added (a gradient the Backprop did not produce is the penalty's alone). */
function withPenalty(computed: { value: tf.Scalar; grads: Record<string, tf.Tensor> }, penalty: Penalty): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const grads = { ...computed.grads };
  for (const [name, g] of Object.entries(penalty.grads)) grads[name] = grads[name] ? tf.add(grads[name], g) : g;
  return { value: tf.add(computed.value, penalty.value), grads };
}
