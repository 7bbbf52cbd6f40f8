import { ErrorCodes, fromLayersModel, type PluginState, TapfitError, type TapfitPlugin } from '@tapfit/core';
import { asList, type LoraOptions, resolveSpec } from './config';
import { applyLora } from './inject';
import type { LoraModel } from './lora-model';
import { formatPlan } from './plan';
import { describeSelector } from './selectors';

export const LORA_PLUGIN = 'lora';

export type LoraPluginOptions = LoraOptions;

/** What a checkpoint records about the surgery, to refuse resuming into a different one. */
interface LoraCheckpointState {
  adapter: string;
  spec: ReturnType<typeof resolveSpec>;
  targets: string[];
}

/**
 * The LoRA plugin: at `setup` it wraps the trainer's tfjs-layers model with
 * `applyLora(model, options)` (its functional twin) and trains only the adapters (and
 * `modulesToSave`). Adapter weights are model variables, so checkpoints carry them; the
 * plugin's own state records the adapted layers and spec, and a resume with other
 * options is refused. After training, `plugin.lora` is the LoraModel handle (merge,
 * unload, saveAdapter).
 */
export function lora(options: LoraPluginOptions): TapfitPlugin & { readonly lora: LoraModel | null } {
  const spec = resolveSpec(options); // validate before any trainer exists
  const adapter = options.adapterName ?? 'default';
  let handle: LoraModel | null = null;
  const state = (): LoraCheckpointState => ({ adapter, spec, targets: handle?.plan?.adapted.map((l) => l.path) ?? [] });
  return {
    name: LORA_PLUGIN,
    core: '^0.1.0',
    get lora() {
      return handle;
    },
    apply({ hooks, logger }) {
      hooks.setup.tap(LORA_PLUGIN, (ctx) => {
        const source = ctx.model.layersModel;
        if (!source) {
          throw new TapfitError(
            ErrorCodes.CONFIG,
            `${LORA_PLUGIN}: the trainer's model is a segment model without a tfjs-layers model, so there are no layers to adapt. ` +
              `Pass a tf.sequential / tf.model (targets ${asList(options.targets).map(describeSelector).join(', ')}).`,
          );
        }
        handle = applyLora(source, { ...options, dryRun: false });
        ctx.replaceModel(fromLayersModel(handle.model));
        logger.info(formatPlan(handle.plan!));
      });
    },
    saveState(): PluginState {
      return { json: state() };
    },
    loadState(saved: PluginState): void {
      const want = JSON.stringify(saved.json);
      const have = JSON.stringify(state());
      if (want !== have) {
        throw new TapfitError(
          ErrorCodes.CHECKPOINT,
          `${LORA_PLUGIN}: the checkpoint was trained with LoRA ${want}, but this trainer applies ${have}; resume with the same targets, rank, alpha and adapter name.`,
        );
      }
    },
  };
}
