import { z } from 'zod';
import { finite, fraction, parseOptions, transformName } from '../options';
import { mapNamed, zerosLikeNamed, type NamedTensors } from '../tensors';
import { bufferFor, withUnchangedBuffers } from './buffers';
import { scaledSum } from './fused-updates';
import type { StepTransform } from './types';

/** `velocity` is v in docs/techniques.md §0.1; `count` marks PyTorch's undamped first step. */
export type MomentumState = { count: number; velocity: NamedTensors };

export interface MomentumOptions {
  /** m in v = m v + g; in [0, 1). */
  momentum: number;
  /** d in v = m v + (1 - d) g (not applied on the first step, as PyTorch); default 0. */
  dampening?: number | undefined;
  /** Emit g + m v instead of v (PyTorch's Nesterov form); needs momentum > 0, dampening 0. */
  nesterov?: boolean | undefined;
  /** Default 'momentum' (the name plugins such as Adaptive Braking replace). */
  name?: string | undefined;
}

const schema = z
  .strictObject({
    momentum: fraction,
    dampening: finite.min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]').default(0),
    nesterov: z.boolean({ error: 'must be true or false' }).default(false),
    name: transformName.default('momentum'),
  })
  .refine((o) => !o.nesterov || (o.momentum > 0 && o.dampening === 0), {
    message: 'needs momentum > 0 and dampening 0 (as in PyTorch)',
    path: ['nesterov'],
  });

/**
 * Heavy-ball momentum in PyTorch's form (docs/techniques.md §0.1): v_{t+1} = m v_t + g_t, emit
 * v_{t+1}. Chained before scaleByLearningRate(eta) this is SGDM, w -= eta v_{t+1};
 * v starts at 0, so v_1 = g_1.
 */
export function momentum(options: MomentumOptions): StepTransform<MomentumState> {
  const { momentum: m, dampening, nesterov, name } = parseOptions('momentum', schema, options);
  return {
    name,
    hyperparams: { momentum: m, dampening, nesterov },
    init: (params) => ({ count: 0, velocity: zerosLikeNamed(params) }),
    update(updates, state) {
      const gScale = state.count === 0 ? 1 : 1 - dampening;
      const updated = mapNamed(updates, (g, key) => {
        const v = bufferFor(state.velocity, key, g, `momentum('${name}') velocity`);
        return scaledSum(v, m, g, gScale);
      });
      const out = nesterov ? mapNamed(updates, (g, key) => scaledSum(updated[key], m, g, 1)) : updated;
      return [out, { count: state.count + 1, velocity: withUnchangedBuffers(state.velocity, updated) }];
    },
  };
}

/** Nesterov momentum, PyTorch form: v_{t+1} = m v_t + g_t, emit g_t + m v_{t+1}. */
export function nesterov(options: { momentum: number; name?: string | undefined }): StepTransform<MomentumState> {
  return momentum({ ...options, nesterov: true });
}
