import { ErrorCodes, parseOptions, TapfitError, type PluginApi, type TapfitPlugin } from '@tapfit/core';
import { z } from 'zod';
import { adaptiveBrakingPlugin, BRAKING_PLUGIN, brakingPluginSchema, type AdaptiveBrakingPluginOptions } from './adaptive-braking-plugin';
import { DELAY_PLUGIN, delayedGradients, type DelayedGradientsPlugin } from './delayed-gradients';

export const BRAKES_PLUGIN = 'brakes';

const brakesSchema = brakingPluginSchema.extend({ braking: z.boolean({ error: 'must be true or false' }).optional(), delay: z.unknown().optional() });

export interface BrakesOptions extends AdaptiveBrakingPluginOptions {
  /** Replace momentum with Adaptive Braking; default true (false: e.g. the plain SGDM baseline of a delay study). */
  braking?: boolean | undefined;
  /** Delay gradients by this many steps (delayedGradients); default 0. */
  delay?: number | undefined;
}

export interface BrakesPlugin extends TapfitPlugin {
  /** The delay part, when `delay` > 0. */
  readonly delayed?: DelayedGradientsPlugin;
  dispose(): void;
}

/**
 * The package's one-stop plugin (what `tapfitPlugin` returns and the CLI loads): Adaptive
 * Braking and/or gradient delay under one name, 'brakes'. Each part is the standalone
 * plugin's apply(); the delay queue is its checkpointed state.
 */
export function brakesPlugin(options: BrakesOptions = {}): BrakesPlugin {
  // Every key of this plugin (its own and Adaptive Braking's) is checked here, so a misspelt one is named against all of them.
  parseOptions(BRAKES_PLUGIN, brakesSchema, options);
  const { braking = true, delay = 0, ...ab } = options ?? {};
  if (!braking && Object.keys(ab).length > 0) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${BRAKES_PLUGIN}: braking is false, so option(s) ${Object.keys(ab).map((k) => `'${k}'`).join(', ')} would be ignored. Remove them or set braking: true.`,
    );
  }
  const parts: TapfitPlugin[] = [];
  if (braking) parts.push(adaptiveBrakingPlugin(ab));
  const delayed = delay !== 0 ? delayedGradients({ delay }) : undefined;
  if (delayed) parts.push(delayed);
  return {
    name: BRAKES_PLUGIN,
    core: '^0.1.0',
    // Its parts would act twice next to the standalone plugins (braking the braked momentum, delaying twice).
    conflicts: [
      ...(braking ? [BRAKING_PLUGIN] : []),
      ...(delayed
        ? [
            DELAY_PLUGIN,
            {
              plugin: 'pipeline',
              reason: `the pipeline already delays each stage's gradients; brakes' delay of ${delay} would stack on top. Use brakes({ delay: 0 }) (Adaptive Braking alone) with the pipeline, or its 'extraDelay' option`,
            },
          ]
        : []),
    ],
    delayed,
    apply: (api: PluginApi) => parts.forEach((p) => p.apply(api)),
    ...(delayed && { saveState: () => delayed.saveState!(), checkState: (s) => delayed.checkState!(s), loadState: (s) => delayed.loadState!(s) }),
    dispose: () => delayed?.dispose(),
  };
}

/** The plugin-package entry point the tapfit CLI calls: `tapfitPlugin(options)`. */
export function tapfitPlugin(options: BrakesOptions = {}): BrakesPlugin {
  return brakesPlugin(options);
}
