import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { TransformState, TransformStateValue } from './types';

/** Every tensor in a state, depth first (a tensor referenced twice is listed once). */
export function stateTensors(state: TransformState): tf.Tensor[] {
  const found = new Set<tf.Tensor>();
  const walk = (value: TransformStateValue) => {
    if (value instanceof tf.Tensor) found.add(value);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk);
  };
  walk(state);
  return [...found];
}

/**
 * Dispose the tensors of `old` that `keep` does not hold (by identity): after a step,
 * `disposeState(oldState, newState)` frees replaced buffers and leaves tensors that
 * passed through unchanged. `keep` may also list extra tensors to spare.
 */
export function disposeState(old: TransformState, keep: TransformState | readonly tf.Tensor[]): void {
  const kept = new Set(Array.isArray(keep) ? keep : stateTensors(keep as TransformState));
  for (const t of stateTensors(old)) if (!kept.has(t) && !t.isDisposed) t.dispose();
}

/**
 * Throw unless `actual` has the layout of `expected` (same keys, numbers where numbers are,
 * tensors of the same shape and dtype): check a loaded checkpoint against `init(params)`
 * before using it, so a changed model or optimizer fails at load, not mid-step.
 */
export function checkStateMatches(expected: TransformState, actual: TransformState, what = 'state'): void {
  const problems: string[] = [];
  const walk = (e: TransformStateValue, a: TransformStateValue | undefined, path: string) => {
    const at = path || '(root)';
    if (e instanceof tf.Tensor) {
      if (!(a instanceof tf.Tensor)) problems.push(`${at}: expected a tensor, found ${kind(a)}`);
      else if (a.dtype !== e.dtype || !sameShape(a.shape, e.shape)) {
        problems.push(`${at}: expected ${e.dtype}[${e.shape}], found ${a.dtype}[${a.shape}]`);
      }
    } else if (typeof e === 'number') {
      if (typeof a !== 'number') problems.push(`${at}: expected a number, found ${kind(a)}`);
    } else if (typeof a !== 'object' || a === null || a instanceof tf.Tensor) {
      problems.push(`${at}: expected a record, found ${kind(a)}`);
    } else {
      const keys = new Set([...Object.keys(e), ...Object.keys(a)]);
      for (const k of keys) {
        const p = path ? `${path}.${k}` : k;
        if (!(k in e)) problems.push(`${p}: unexpected entry`);
        else walk((e as TransformState)[k], (a as TransformState)[k], p);
      }
    }
  };
  walk(expected, actual, '');
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw new TapfitError(
      ErrorCodes.STATE,
      `${what} does not match the transform: ${shown}. It was saved for a different model or optimizer; ` +
        'rebuild the same configuration or start without it.',
    );
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v instanceof tf.Tensor) return `a tensor ${v.dtype}[${v.shape}]`;
  return typeof v === 'object' ? (v === null ? 'null' : 'a record') : `a ${typeof v}`;
}
