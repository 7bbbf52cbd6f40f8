import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { NamedTensors } from '../tensors';
import { disposeState, stateTensors } from '../transforms/state';
import type { StepTransform, TransformState } from '../transforms/types';

/** Applies gradients to the variables: either a transform chain or a black-box optimizer. */
export interface Stepper {
  /** Runs inside the step's tf.tidy. */
  apply(grads: NamedTensors, variables: Readonly<Record<string, tf.Variable>>, step: number): void;
  /** Names of the chain's transforms (empty for a black-box optimizer). */
  readonly names: readonly string[];
  dispose(): void;
}

/**
 * Runs an optax-style chain. The chain state lives here between steps, keyed by
 * transform name; each step keeps the new state's tensors and frees the old ones.
 */
export class ChainStepper implements Stepper {
  state: Record<string, TransformState>;
  readonly names: readonly string[];

  constructor(
    readonly transforms: readonly StepTransform[],
    variables: Readonly<Record<string, tf.Variable>>,
  ) {
    const seen = new Set<string>();
    for (const t of transforms) {
      if (seen.has(t.name)) throw new TapfitError(ErrorCodes.CONFIG, `step transforms: two transforms are named '${t.name}'. Give each a unique name.`);
      seen.add(t.name);
    }
    this.names = transforms.map((t) => t.name);
    this.state = tf.tidy(() => {
      const s: Record<string, TransformState> = {};
      for (const t of transforms) s[t.name] = t.init(variables);
      stateTensors(s).forEach((x) => tf.keep(x));
      return s;
    });
  }

  apply(grads: NamedTensors, variables: Readonly<Record<string, tf.Variable>>, step: number): void {
    const old = this.state;
    const next: Record<string, TransformState> = {};
    let updates = grads;
    for (const t of this.transforms) [updates, next[t.name]] = t.update(updates, old[t.name], variables, { step });
    for (const name of Object.keys(updates)) {
      const v = variables[name];
      v.assign(tf.add(v, updates[name]));
    }
    stateTensors(next).forEach((x) => tf.keep(x));
    disposeState(old, next);
    this.state = next;
  }

  /** Replace the state (checkpoint restore); takes ownership of the tensors. */
  setState(state: Record<string, TransformState>): void {
    disposeState(this.state, state);
    this.state = state;
  }

  dispose(): void {
    tf.dispose(stateTensors(this.state));
  }
}

/** A black-box `tf.train.Optimizer` (its state is its own). */
export class OptimizerStepper implements Stepper {
  readonly names: readonly string[] = [];
  constructor(readonly optimizer: tf.Optimizer) {}

  apply(grads: NamedTensors): void {
    this.optimizer.applyGradients(grads);
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
