import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, mapNamed, parseOptions, scaledSum, TapfitError, zerosLikeNamed, type NamedTensors, type StepTransform } from '@tapfit/core';
import { brakingScales } from './braking-scale';
import { adaptiveBrakingSchema, type AdaptiveBrakingOptions } from './options';

/**
 * `velocity` is v of docs/techniques.md §0.1 (PyTorch form), `scale` the alpha applied at the
 * last step per parameter (1 before the first), `count` the steps taken.
 */
export type AdaptiveBrakingState = { count: number; velocity: NamedTensors; scale: NamedTensors };

/**
 * Adaptive Braking (Venigalla et al. 2020; docs/techniques.md §4.2) on PyTorch-form momentum:
 *
 *   alpha = 1 - rho * cos(g, v),  v <- m v + alpha g,  emit v
 *
 * A drop-in replacement for core's momentum() (chain it before scaleByLearningRate for
 * SGDM+AB). With rho = 0 it computes exactly what momentum() computes, bit for bit.
 */
export function adaptiveBraking(options: AdaptiveBrakingOptions): StepTransform<AdaptiveBrakingState> {
  const o = parseOptions('adaptiveBraking', adaptiveBrakingSchema, options);
  const { name, momentum: m, weightDecay, applyToWeightDecay } = o;
  const who = `adaptiveBraking('${name}')`;
  return {
    name,
    hyperparams: { momentum: m, compensation: 'adaptive-braking', rho: o.rho, granularity: o.granularity, weightDecay, applyToWeightDecay, eps: o.eps },
    init(params) {
      // 'global' shares one scale tensor between all parameters, from the start.
      const one = o.granularity === 'global' ? tf.scalar(1) : undefined;
      return { count: 0, velocity: zerosLikeNamed(params), scale: mapNamed(params, () => one ?? tf.scalar(1)) };
    },
    update(updates, state, params) {
      for (const [key, g] of Object.entries(updates)) checkBuffer(who, 'velocity', state.velocity, key, g);
      const decay = weightDecay > 0 ? mapNamed(updates, (g, key) => tf.mul(checkBuffer(who, 'parameter', params, key, g), weightDecay)) : {};
      const g = weightDecay > 0 && applyToWeightDecay ? mapNamed(updates, (u, key) => tf.add(u, decay[key])) : updates;
      const scale = brakingScales(g, state.velocity, o);
      const fresh = mapNamed(g, (gk, key) => {
        // m v + (alpha g) as core's momentum() writes it: one fused kernel where the backend
        // has it (wasm), the same tf.mul / tf.add otherwise; the same float32 values either
        // way (wasm's fused kernel stores subnormal results as zero, as momentum's does).
        const v = scaledSum(state.velocity[key], m, tf.mul(gk, scale[key]), 1);
        return weightDecay > 0 && !applyToWeightDecay ? tf.add(v, decay[key]) : v;
      });
      // Parameters without an update this step keep their velocity (and last scale).
      const velocity = { ...state.velocity, ...fresh };
      return [fresh, { count: state.count + 1, velocity, scale: { ...state.scale, ...scale } }];
    },
  };
}

/** The buffer for `key`, checked, so a missing or mis-shaped one fails here and not deep in tf. */
function checkBuffer(who: string, what: string, buffers: NamedTensors, key: string, g: tf.Tensor): tf.Tensor {
  const b = buffers[key];
  if (b === undefined) {
    throw new TapfitError(
      ErrorCodes.STATE,
      `${who}: no ${what} for parameter '${key}' (have: ${Object.keys(buffers).join(', ') || 'none'}). ` +
        'Initialise the transform with every parameter that receives updates.',
    );
  }
  if (b.shape.length !== g.shape.length || b.shape.some((d, i) => d !== g.shape[i])) {
    throw new TapfitError(ErrorCodes.SHAPE, `${who}: ${what} '${key}' has shape [${b.shape}] but its update has shape [${g.shape}].`);
  }
  return b;
}
