import type * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { NamedTensors } from '../tensors';

/**
 * Throws unless every gradient a `backward` tap returned belongs to a trainable variable
 * and has its shape and dtype. Without this a wrong shape is broadcast silently into the
 * update (plain SGD adds it as is). Not the finite-difference check of custom gradients:
 * that is `checkGradients(f, xs)` from `@tapfit/core/testing`.
 */
export function checkGradients(grads: NamedTensors | null, variables: Readonly<Record<string, tf.Variable>>, plugin: string): void {
  if (grads === null) return;
  const fail = (why: string): never => {
    throw new TapfitError(
      ErrorCodes.SHAPE,
      `plugin '${plugin}' returned a bad gradient from hook 'backward': ${why}. A backward tap returns gradients keyed by variable name, each shaped like its variable (or null to skip the update).`,
    );
  };
  if (typeof grads !== 'object') fail(`expected gradients by variable name or null, got ${typeof grads}`);
  for (const [name, g] of Object.entries(grads)) {
    const v = variables[name];
    if (!v) fail(`'${name}' is not a trainable variable (variables: ${Object.keys(variables).slice(0, 6).join(', ')}${Object.keys(variables).length > 6 ? ', ...' : ''})`);
    if (!g || !Array.isArray(g.shape)) fail(`the gradient for '${name}' is not a tensor`);
    const sameShape = g.shape.length === v.shape.length && g.shape.every((d, i) => d === v.shape[i]);
    if (!sameShape || g.dtype !== v.dtype) fail(`the gradient for '${name}' is ${g.dtype}[${g.shape}] but the variable is ${v.dtype}[${v.shape}]`);
  }
}
