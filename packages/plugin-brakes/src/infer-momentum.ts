import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, type StepTransform } from '@tapfit/core';

/**
 * The m of a PyTorch-form momentum transform, read off its behaviour: on a scalar
 * parameter, feeding gradients 1, 0, 1 must emit 1, m, m^2 + 1 (v_1 = g_1, v_2 = m v_1,
 * v_3 = m v_2 + g_3). Nesterov (emits 1 + m first) and dampening (last output short by
 * d) are refused, since Adaptive Braking is defined on plain heavy-ball momentum. Core's
 * momentum() does not expose its options, so this keeps one source of truth for m.
 */
export function inferMomentum(t: StepTransform, plugin: string): number {
  const refuse = (why: string): never => {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${plugin}: cannot take the momentum from chain member '${t.name}': ${why}. ` +
        "Build the optimizer as sgd({ lr, momentum }) without nesterov or dampening, or pass the plugin's `momentum` option explicitly.",
    );
  };
  let out: number[];
  try {
    out = tf.tidy(() => {
      const params = { probe: tf.scalar(0) };
      let state = t.init(params);
      return [1, 0, 1].map((g, step) => {
        const [u, next] = t.update({ probe: tf.scalar(g) }, state, params, { step });
        state = next;
        return u.probe.dataSync()[0];
      });
    });
  } catch (err) {
    return refuse(`probing it failed (${err instanceof Error ? err.message : String(err)})`);
  }
  const [first, m, third] = out;
  const show = (x: number) => Number(x.toPrecision(7));
  const tol = 1e-6;
  if (Math.abs(first - 1) > tol) refuse(`its first update for gradient 1 is ${show(first)}, not 1 (Nesterov momentum, or not a momentum transform)`);
  if (!(m >= 0 && m < 1)) refuse(`it gives momentum ${show(m)}, outside [0, 1)`);
  if (Math.abs(third - (m * m + 1)) > tol) refuse(`it damps the gradient (dampening ${show(1 + m * m - third)})`);
  // The probe saw float32(m); 7 significant digits give back the number the user wrote.
  return Number(m.toPrecision(7));
}
