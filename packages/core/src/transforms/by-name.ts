import { ErrorCodes, TapfitError } from '../errors';
import { suggest } from '../options';
import type { Chain } from './chain';
import { adadelta, adagrad, adam, adamax, rmsprop, sgd } from './optimizers';

/**
 * The optimizer names `model.compile` accepts, plus 'momentum', each as a transform chain
 * with the defaults tfjs-layers 4.22 gives the name (tfjs-layers' `getOptimizer`):
 *
 * | name | chain | defaults |
 * |---|---|---|
 * | `sgd` | `sgd` | lr 0.01 |
 * | `momentum` | `sgd` with momentum | lr 0.01, momentum 0.9 (tf.train.momentum has no defaults; these are tapfit's) |
 * | `adam` | `adam` | lr 0.001, b1 0.9, b2 0.999, eps = backend epsilon |
 * | `adamax` | `adamax` | lr 0.002, b1 0.9, b2 0.999, eps = backend epsilon |
 * | `rmsprop` | `rmsprop` | lr 0.001, decay 0.9, momentum 0, eps = backend epsilon |
 * | `adagrad` | `adagrad` | lr 0.01, initial accumulator 0.1, eps = backend epsilon |
 * | `adadelta` | `adadelta` | lr 1, rho 0.95, eps = backend epsilon |
 *
 * tfjs's capitalised spellings ('SGD', 'Adam', 'RMSProp', ...) are accepted too. The
 * backend epsilon is 1e-7 on every float32 backend (cpu, wasm, tensorflow).
 */
const builders = {
  sgd: () => sgd({ lr: 0.01 }),
  momentum: () => sgd({ lr: 0.01, momentum: 0.9 }),
  adam: (eps) => adam({ lr: 0.001, b1: 0.9, b2: 0.999, eps }),
  adamax: (eps) => adamax({ lr: 0.002, b1: 0.9, b2: 0.999, eps }),
  rmsprop: (eps) => rmsprop({ lr: 0.001, decay: 0.9, eps }),
  adagrad: (eps) => adagrad({ lr: 0.01, initialAccumulatorValue: 0.1, eps }),
  adadelta: (eps) => adadelta({ lr: 1, rho: 0.95, eps }),
} satisfies Record<string, (epsilon: number) => Chain>;

const aliases = { SGD: 'sgd', Momentum: 'momentum', Adam: 'adam', Adamax: 'adamax', RMSProp: 'rmsprop', Adagrad: 'adagrad', Adadelta: 'adadelta' } as const satisfies Record<string, keyof typeof builders>;

/** The optimizer names `optimizerByName` (and `TrainerOptions.optimizer`) takes; editors offer them. An unknown one is refused when the trainer is built. */
export type OptimizerName = keyof typeof builders | keyof typeof aliases;

/** Every optimizer name `optimizerByName` accepts (lower-case forms). */
export const OPTIMIZER_NAMES = Object.freeze(Object.keys(builders));

/** Whether `name` is an optimizer name (any accepted spelling). */
export function isOptimizerName(name: unknown): name is OptimizerName {
  return typeof name === 'string' && (Object.hasOwn(builders, name) || Object.hasOwn(aliases, name));
}

/**
 * The transform chain for a `model.compile` optimizer name, with tfjs's defaults
 * (`epsilon`: the backend's, default 1e-7). An unknown name is a TAPFIT_E_CONFIG error
 * that lists the accepted names.
 */
export function optimizerByName(name: string, options: { epsilon?: number | undefined } = {}): Chain {
  // `name` is typed string: JavaScript callers and configs pass any.
  const key: string = (aliases as Record<string, string>)[name] ?? name;
  const build = Object.hasOwn(builders, key) ? builders[key as keyof typeof builders] : undefined;
  if (!build) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `optimizer: unknown name '${name}'${suggest(name, [...OPTIMIZER_NAMES, ...Object.keys(aliases)]).replace(/ \(valid: .*\)$/, '')}. ` +
        `Accepted names: ${OPTIMIZER_NAMES.join(', ')}; or pass step transforms (e.g. sgd({ lr: 0.1, momentum: 0.9 })) or a tf.train optimizer.`,
    );
  }
  return build(options.epsilon ?? 1e-7);
}
