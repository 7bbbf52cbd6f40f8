import { ErrorCodes, fromLayersModel, isLayersAdapter, type PluginState, TapfitError, type TapfitPlugin } from '@tapfit/core';
import { applyLora } from './layers/apply-lora';
import type { LoraModel } from './layers/lora-model';
import { applyLoraToSegments, type LoraSegmentModel } from './segments/segment-lora';
import { type LoraOptions, resolveSpec } from './common/config';

export const LORA_PLUGIN = 'lora';

export interface LoraPluginOptions extends LoraOptions {
  /** Log the plan (adapted layers, parameter counts) through the trainer's logger at setup. Default false. */
  verbose?: boolean;
}

/** What a checkpoint records about the surgery, to refuse resuming into a different one. */
interface LoraCheckpointState {
  adapter: string;
  spec: ReturnType<typeof resolveSpec>;
  targets: string[];
}

/**
 * The LoRA plugin: at `setup` it wraps the trainer's model and trains only the adapters
 * (and `modulesToSave`). A tfjs-layers model goes through `applyLora(model, options)`,
 * a segment model through `applyLoraToSegments(model, options)` (the functional twins).
 * Adapter weights are model variables, so checkpoints carry them; the plugin's own
 * state records the adapted layers or variables and the spec, and a resume with other
 * options is refused. After training, `plugin.lora` (layers) or `plugin.segmentLora`
 * (segments) is the handle: merge, unload, saveAdapter, and `describe()` for the plan,
 * which is logged at setup only with `verbose: true`. Disposing the trainer frees a
 * segment LoRA's adapters (the trainer owns what setup swaps in).
 */
export function lora(options: LoraPluginOptions): TapfitPlugin & { readonly lora: LoraModel | null; readonly segmentLora: LoraSegmentModel | null } {
  const spec = resolveSpec(options); // validate before any trainer exists
  const adapter = options.adapterName ?? 'default';
  let handle: LoraModel | null = null;
  let segmentHandle: LoraSegmentModel | null = null;
  const state = (): LoraCheckpointState => ({ adapter, spec, targets: (handle?.plan ?? segmentHandle?.plan)?.adapted.map((l) => l.path) ?? [] });
  const checkSaved = (saved: PluginState): void => {
    const want = JSON.stringify(saved.json);
    const have = JSON.stringify(state());
    if (want !== have) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `${LORA_PLUGIN}: the checkpoint was trained with LoRA ${want}, but this trainer applies ${have}; resume with the same targets, rank, alpha and adapter name.`,
      );
    }
  };
  return {
    name: LORA_PLUGIN,
    core: '^0.1.0',
    get lora() {
      return handle;
    },
    get segmentLora() {
      return segmentHandle;
    },
    apply({ hooks, logger }) {
      hooks.setup.tap(LORA_PLUGIN, (ctx) => {
        // A tfjs-layers model is rebuilt with LoRA layers. A model whose segments are its own
        // (a segment model, or a reversible network that also offers a layers view) is
        // adapted through its segments, keeping them (and their inverses).
        const source = isLayersAdapter(ctx.model) ? ctx.model.layersModel : undefined;
        if (source) {
          handle = applyLora(source, { ...options, dryRun: false });
          ctx.replaceModel(fromLayersModel(handle.model));
          if (options.verbose) logger.info(handle.describe());
        } else {
          segmentHandle = applyLoraToSegments(ctx.model, { ...options, dryRun: false });
          const owned = segmentHandle;
          // The trainer owns what setup swaps in: disposing it frees A, B and unfreezes the base.
          ctx.replaceModel({ ...owned.model, dispose: () => owned.dispose() });
          if (options.verbose) logger.info(owned.describe());
        }
      });
    },
    saveState(): PluginState {
      return { json: state() };
    },
    // The adapters are model variables; the saved state only has to match this plugin's.
    checkState: checkSaved,
    loadState: checkSaved,
  };
}
