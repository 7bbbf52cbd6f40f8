import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { ChainState } from '../transforms/chain';
import type { TransformState, TransformStateValue } from '../transforms/types';

/** How the trainable variables differ from those the trainer was set up with (`layer.trainable` set between fits). */
export interface TrainableSetChange {
  /** Now trainable, not before. */
  added: string[];
  /** Trainable before, not now. */
  removed: string[];
}

/** The change from `before` to `now`, or undefined when they are the same variables. */
export function trainableSetChange(before: Readonly<Record<string, tf.Variable>>, now: readonly tf.Variable[]): TrainableSetChange | undefined {
  const names = new Set(now.map((v) => v.name));
  const added = now.filter((v) => before[v.name] !== v).map((v) => v.name);
  const removed = Object.keys(before).filter((n) => !names.has(n));
  return added.length || removed.length ? { added, removed } : undefined;
}

/** `now trainable: a, b; no longer trainable: c`, a few names each. */
export function describeChange({ added, removed }: TrainableSetChange): string {
  const few = (names: string[]) => names.slice(0, 4).join(', ') + (names.length > 4 ? ` and ${names.length - 4} more` : '');
  return [added.length ? `now trainable: ${few(added)}` : '', removed.length ? `no longer trainable: ${few(removed)}` : ''].filter(Boolean).join('; ');
}

/**
 * The update chain's state for a changed set of trainable variables: `fresh` (the chain's
 * init for the new set) with `old`'s value wherever the variable is still trained, so kept
 * variables keep their buffers (momentum, moments), counters go on, new variables start
 * from init and those no longer trained drop theirs. Per-variable entries are recognised
 * as records keyed by exactly the trainable names (old names in `old`, new in `fresh`), the
 * layout every built-in transform uses. Anything else must match between the two (same
 * keys, tensors of one shape), else a TapfitError names the entry: the state of such a
 * transform cannot be carried over. Creates and disposes nothing.
 */
export function carryChainState(old: ChainState, fresh: ChainState, oldNames: ReadonlySet<string>, newNames: ReadonlySet<string>): ChainState {
  const keyedByVariables = (record: object, names: ReadonlySet<string>) => {
    const keys = Object.keys(record);
    return keys.length === names.size && keys.every((k) => names.has(k));
  };
  const refuse = (path: string, why: string): never => {
    throw new TapfitError(ErrorCodes.STATE, `the update chain's state at '${path}' ${why}, so it cannot follow a change of the trainable variables`);
  };
  const carry = (o: TransformStateValue | undefined, f: TransformStateValue, path: string): TransformStateValue => {
    if (f instanceof tf.Tensor) {
      if (o instanceof tf.Tensor && o.dtype === f.dtype && o.shape.length === f.shape.length && o.shape.every((d, i) => d === f.shape[i])) return o;
      return refuse(path, `is a tensor whose shape follows the trainable set (${o instanceof tf.Tensor ? `[${o.shape}] before, [${f.shape}] now` : 'not there before'})`);
    }
    if (typeof f === 'number') return typeof o === 'number' ? o : refuse(path, 'was not a number before');
    if (typeof o !== 'object' || o === null || o instanceof tf.Tensor) return refuse(path, 'was not a record before');
    if (keyedByVariables(o, oldNames) && keyedByVariables(f, newNames)) {
      return Object.fromEntries(Object.entries(f).map(([name, v]) => [name, name in o ? (o as TransformState)[name] : v])) as TransformState;
    }
    const keys = Object.keys(f);
    if (Object.keys(o).length !== keys.length || !keys.every((k) => k in o)) refuse(path, 'has entries that are not one per trainable variable');
    return Object.fromEntries(keys.map((k) => [k, carry((o as TransformState)[k], (f as TransformState)[k], path ? `${path}.${k}` : k)])) as TransformState;
  };
  return carry(old, fresh, '') as ChainState;
}
