import {
  ErrorCodes,
  findTransform,
  isChain,
  optionSchemas,
  parseOptions,
  replaceTransform,
  TapfitError,
  type Edited,
  type StepTransform,
  type TapfitPlugin,
  type TransformTree,
} from '@tapfit/core';
import { z } from 'zod';
import { adaptiveBraking } from './adaptive-braking';
import { brakingKnobs, type AdaptiveBrakingOptions } from './options';

export const BRAKING_PLUGIN = 'adaptive-braking';

export interface AdaptiveBrakingPluginOptions extends Omit<AdaptiveBrakingOptions, 'momentum' | 'name'> {
  /** Default: read from the momentum member being replaced (so it matches the optimizer's). */
  momentum?: number | undefined;
  /** The chain member to replace (a name or path, as core's findTransform); default 'momentum'. */
  target?: string | undefined;
}

export const brakingPluginSchema = z.strictObject({
  ...brakingKnobs,
  momentum: optionSchemas.fraction.optional(),
  target: z.string().min(1, 'must be a member name or path, e.g. \'momentum\' or \'sgd/momentum\'').default('momentum'),
});

/**
 * Functional twin of the plugin: `tree` (a chain such as sgd({ lr, momentum }) or a list
 * of members) with its momentum member replaced by adaptiveBraking. The replacement keeps
 * the member's name, so the state stays at `state.momentum` (velocity, scale, count).
 */
export function withAdaptiveBraking<T extends TransformTree>(tree: T, options: AdaptiveBrakingPluginOptions = {}): Edited<T> {
  const o = parseOptions(BRAKING_PLUGIN, brakingPluginSchema, options);
  return brake(tree, o);
}

function brake<T extends TransformTree>(tree: T, o: z.output<typeof brakingPluginSchema>): Edited<T> {
  const members = flatten(tree);
  const names = members.map((t) => `'${t.name}'`).join(', ') || 'none';
  const target = findTransform(tree, o.target);
  if (!target) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${BRAKING_PLUGIN}: the update chain has no '${o.target}' member to replace (members: ${names}). ` +
        'Adaptive Braking replaces the momentum of SGDM: use an optimizer with momentum, e.g. sgd({ lr, momentum: 0.9 }).',
    );
  }
  const decayBefore = members.slice(0, members.indexOf(target)).some((t) => t.name === 'weightDecay');
  if (decayBefore && (o.weightDecay > 0 || !o.applyToWeightDecay)) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${BRAKING_PLUGIN}: the optimizer already adds weight decay before momentum (member 'weightDecay'), so ` +
        (o.weightDecay > 0 ? 'the plugin\'s weightDecay would decay twice' : 'applyToWeightDecay: false cannot separate it from the gradient') +
        '. Build the optimizer without weightDecay and pass weightDecay to the plugin instead.',
    );
  }
  // A delay compensation in its place is refused even when `momentum` is given: braking it would silently drop it.
  const compensation = target.hyperparams?.compensation;
  if (typeof compensation === 'string') {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${BRAKING_PLUGIN}: chain member '${target.name}' is already a delay compensation ('${compensation}', e.g. the pipeline's Spike Compensation), and braking it would drop it. ` +
        "Adaptive Braking and Spike Compensation are alternatives: use one (the pipeline's compensation 'none' leaves momentum to brake).",
    );
  }
  const momentum = o.momentum ?? momentumOf(target);
  const { target: _query, ...knobs } = o;
  return replaceTransform(tree, o.target, adaptiveBraking({ ...knobs, momentum, name: target.name }));
}

/**
 * The Adaptive Braking plugin: taps `stepTransforms` and replaces the chain's momentum
 * member with adaptiveBraking (same name, same m unless `momentum` is given). Needs a
 * transform chain; with a black-box tf.train optimizer the trainer fails at setup with
 * TAPFIT_E_NEEDS_CHAIN. Options are validated here, before any trainer exists.
 */
export function adaptiveBrakingPlugin(options: AdaptiveBrakingPluginOptions = {}): TapfitPlugin {
  const o = parseOptions(BRAKING_PLUGIN, brakingPluginSchema, options);
  return {
    name: BRAKING_PLUGIN,
    core: '^0.1.0',
    apply({ hooks }) {
      hooks.stepTransforms.tap(BRAKING_PLUGIN, (members) => brake(members, o));
    },
  };
}

/**
 * The m of the momentum member being replaced, read from its hyperparameters. Adaptive
 * Braking is defined on plain heavy-ball momentum, so Nesterov and dampening are refused.
 */
function momentumOf(t: StepTransform): number {
  const refuse = (why: string): never => {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${BRAKING_PLUGIN}: cannot take the momentum from chain member '${t.name}': ${why}. ` +
        "Build the optimizer as sgd({ lr, momentum }) without nesterov or dampening, or pass the plugin's `momentum` option explicitly.",
    );
  };
  const h = t.hyperparams ?? {};
  if (typeof h.momentum !== 'number') return refuse('it does not expose a numeric `momentum` hyperparameter (not a momentum() transform?)');
  if (h.nesterov === true) refuse('it is Nesterov momentum');
  if (typeof h.dampening === 'number' && h.dampening !== 0) refuse(`it damps the gradient (dampening ${h.dampening})`);
  return h.momentum as number;
}

function flatten(tree: TransformTree): StepTransform[] {
  const list = isChain(tree as StepTransform) ? (tree as { transforms: readonly StepTransform[] }).transforms : (tree as readonly StepTransform[]);
  return list.flatMap((t) => (isChain(t) ? flatten(t) : [t]));
}
