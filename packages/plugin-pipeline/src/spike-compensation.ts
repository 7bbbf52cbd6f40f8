import { ErrorCodes, mapNamed, scaledSum, TapfitError, zerosLikeNamed, type NamedTensors, type StepTransform } from '@tapfit/core';

/** SC's coefficients for momentum m and delay D: a = m^D, b = 1 + m + ... + m^(D-1) (docs/techniques.md §5.3). */
export function spikeCoefficients(momentum: number, delay: number): { a: number; b: number } {
  const a = momentum ** delay;
  let b = 0;
  for (let k = 0; k < delay; k++) b += momentum ** k; // the sum, exact also at m = 0
  return { a, b };
}

/** Same layout as core's momentum state, so the velocity is read the same way. */
export type SpikeCompensationState = { count: number; velocity: NamedTensors };

export interface SpikeCompensationOptions {
  /** m of PyTorch-form momentum (docs/techniques.md §0.1), in [0, 1). */
  momentum: number;
  /** D for every variable, or per variable name (a pipeline gives each stage's variables its D_s). */
  delay: number | ((variable: string) => number);
  /** Default 'momentum': it replaces core's momentum() member of the same name. */
  name?: string | undefined;
}

/**
 * Spike Compensation (docs/techniques.md §5.3): momentum that knows each gradient
 * arrives D steps late. v_{t+1} = m v_t + g_t, emit a v_{t+1} + b g_t, so a following
 * scaleByLearningRate gives w -= lr (a v + b g). D = 0 is core's momentum exactly, D = 1
 * core's Nesterov exactly (same operations: core's scaledSum, one fused kernel on wasm).
 */
export function spikeCompensation(options: SpikeCompensationOptions): StepTransform<SpikeCompensationState> {
  const { momentum: m, delay } = options;
  const name = options.name ?? 'momentum';
  if (!(typeof m === 'number' && m >= 0 && m < 1)) {
    throw new TapfitError(ErrorCodes.CONFIG, `spikeCompensation: 'momentum' must be in [0, 1) (got ${m}).`);
  }
  const delayOf = (key: string): number => {
    const d = typeof delay === 'function' ? delay(key) : delay;
    if (!Number.isInteger(d) || d < 0) {
      throw new TapfitError(ErrorCodes.CONFIG, `spikeCompensation: the delay of '${key}' must be an integer >= 0 (got ${d}); pass delay as a number or a function of the variable name.`);
    }
    return d;
  };
  if (typeof delay === 'number') delayOf('every variable'); // a bad constant is refused here, not at the first update
  return {
    name,
    hyperparams: { momentum: m, compensation: 'spike', ...(typeof delay === 'number' ? { delay } : {}) },
    init: (params) => ({ count: 0, velocity: zerosLikeNamed(params) }),
    update(updates, state) {
      const velocity = mapNamed(updates, (g, key) => {
        const v = state.velocity[key];
        if (!v) throw new TapfitError(ErrorCodes.STATE, `spikeCompensation('${name}'): no velocity for '${key}'; the state was made for other variables (call init on these).`);
        if (v.shape.join(',') !== g.shape.join(',')) {
          throw new TapfitError(ErrorCodes.STATE, `spikeCompensation('${name}'): the velocity of '${key}' is [${v.shape}] but its gradient [${g.shape}]; the state was made for other variables (call init on these).`);
        }
        return scaledSum(v, m, g, 1);
      });
      const out = mapNamed(updates, (g, key) => {
        const d = delayOf(key);
        if (d === 0) return velocity[key];
        const { a, b } = spikeCoefficients(m, d);
        return scaledSum(velocity[key], a, g, b);
      });
      // Parameters without an update this step keep their velocity (as core's momentum does).
      return [out, { count: state.count + 1, velocity: { ...state.velocity, ...velocity } }];
    },
  };
}
