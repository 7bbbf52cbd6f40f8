import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from '../tensors';
import { chain, type Chain, type ChainState } from '../transforms/chain';
import { disposeState, stateTensors } from '../transforms/state';
import { transformStep } from '../transforms/step';
import type { StepTransform } from '../transforms/types';

/**
 * Applies one step's gradients to the variables: a transform chain or a black-box
 * optimizer. The trainer and asyncTrain's master both update through a Stepper, so a
 * gradient is applied the same way whoever computed it.
 */
export interface Stepper {
  /** Applies `grads` (keyed by variable name) as update number `step`; the caller keeps `grads`. */
  apply(grads: NamedTensors, step: number): void;
  /** Names of the chain's members (empty for a black-box optimizer). */
  readonly names: readonly string[];
  dispose(): void;
}

/**
 * An optax-style chain over `variables`. Each step goes through `transformStep`: the
 * chain's update and the parameter writes in one tidy, then the old state's replaced
 * tensors freed; if the chain throws, parameters and state are unchanged. The state
 * lives here between steps, keyed by member name (`state.momentum.velocity`).
 */
export class ChainStepper implements Stepper {
  readonly chain: Chain;
  state: ChainState;

  /**
   * @param suppliedBy member name -> the plugins that supplied or replaced it (see
   *   MemberOrigins); the optimizer's own members are not listed. Checkpoints record it.
   */
  constructor(
    members: readonly StepTransform[],
    readonly variables: Readonly<Record<string, tf.Variable>>,
    readonly suppliedBy: Readonly<Record<string, readonly string[]>> = {},
  ) {
    this.chain = chain('update', ...members);
    this.state = tf.tidy(() => {
      const s = this.chain.init(variables);
      stateTensors(s).forEach((t) => tf.keep(t));
      return s;
    });
  }

  get names(): readonly string[] {
    return this.chain.transforms.map((t) => t.name);
  }

  get transforms(): readonly StepTransform[] {
    return this.chain.transforms;
  }

  apply(grads: NamedTensors, step: number): void {
    this.state = transformStep(this.chain, this.variables as Record<string, tf.Variable>, grads, this.state, { step });
  }

  /** Replace the state (checkpoint restore); takes ownership of the tensors. */
  setState(state: ChainState): void {
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

  /** Nothing: the optimizer is the caller's (often model.optimizer, used again by model.fit), its state theirs to keep or dispose. */
  dispose(): void {}
}

/**
 * Follows which plugins supplied each update-chain member, tap by tap through hook
 * 'stepTransforms': a member a tap returns that it was not given is that plugin's, after
 * the plugins of the member it replaced (same name). By identity, because a replacement
 * may keep the member's name (Adaptive Braking's 'momentum'): names alone do not show a
 * resume that such a plugin was added or removed.
 */
export class MemberOrigins {
  private readonly by = new Map<StepTransform, readonly string[]>();

  /** After a tap of `plugin` turned `given` into `returned`. */
  tapped(given: readonly StepTransform[], returned: readonly StepTransform[], plugin: string): void {
    const kept = new Set(given);
    const byName = new Map(given.map((t) => [t.name, t]));
    for (const t of returned) {
      if (kept.has(t) || this.by.has(t)) continue;
      const replaced = byName.get(t.name);
      const before = (replaced && this.by.get(replaced)) || [];
      this.by.set(t, before[before.length - 1] === plugin ? before : [...before, plugin]);
    }
  }

  /** Member name -> its plugins, for the members of the final chain that plugins supplied. */
  of(members: readonly StepTransform[]): Record<string, string[]> {
    return Object.fromEntries(members.filter((t) => this.by.has(t)).map((t) => [t.name, [...this.by.get(t)!]]));
  }
}
