import { ErrorCodes, fromLayersModel, isLayersAdapter, type PluginState, sameVariable, TapfitError, type TapfitPlugin } from '@tapfit/core';
import { applyLora } from './layers/apply-lora';
import type { LoraModel } from './layers/lora-model';
import { applyLoraToSegments, type LoraSegmentModel } from './segments/segment-lora';
import { checkFlag, type LoraOptions, resolveOptions, type resolveSpec } from './common/config';
import { checkOptionKeys, LORA_KEYS } from './common/option-keys';

export const LORA_PLUGIN = 'lora';

export interface LoraPluginOptions extends LoraOptions {
  /** Log the plan (adapted layers, parameter counts) through the trainer's logger at setup. Default false. */
  verbose?: boolean | undefined;
}

/** What a checkpoint records about the surgery, to refuse resuming into a different one. */
interface LoraCheckpointState {
  adapter: string;
  spec: ReturnType<typeof resolveSpec>;
  targets: string[];
  /** Paths trained in full: a resume without them would silently freeze them. */
  modulesToSave: string[];
}

/** The state's lists of layer (or segment variable) paths. */
const PATH_KEYS: ReadonlySet<string> = new Set(['targets', 'modulesToSave']);

/**
 * The same layers, by core's resume rule for names: tfjs makes up names for unnamed layers
 * ('dense_Dense3') and numbers repeated ones per process, so only names the user gave are
 * compared, and the same model built again (in this process too) resumes.
 */
function samePaths(saved: unknown, now: unknown): boolean {
  if (!Array.isArray(saved) || !Array.isArray(now) || saved.length !== now.length) return false;
  return saved.every((p, i) => typeof p === 'string' && typeof now[i] === 'string' && sameVariable(p, now[i] as string));
}

/** The plugin's handles on what setup built; each throws a STATE error naming the fix until then. */
export interface LoraHandles {
  /** The LoRA model of a tfjs-layers model (rebuilt with LoRA layers): merge, unload, saveAdapter, describe. */
  readonly lora: LoraModel;
  /** The LoRA handle of a segment model (adapted through its segments): merge, unmerge, describe. */
  readonly segmentLora: LoraSegmentModel;
  /** Whichever of the two setup built, for code that takes both kinds of model. */
  readonly handle: LoraModel | LoraSegmentModel;
}

/** Why a handle is not there: setup has not run, or it built the other kind. */
function notBuilt(asked: 'lora' | 'segmentLora' | 'handle', built: 'layers' | 'segments' | null): TapfitError {
  if (built === 'segments') {
    return new TapfitError(ErrorCodes.STATE, `${LORA_PLUGIN}: plugin.lora is the handle of a tfjs-layers model, and this trainer's model was adapted through its segments: use plugin.segmentLora (or plugin.handle, either kind).`);
  }
  if (built === 'layers') {
    return new TapfitError(ErrorCodes.STATE, `${LORA_PLUGIN}: plugin.segmentLora is the handle of a segment model, and this trainer's model is a tfjs-layers model: use plugin.lora (or plugin.handle, either kind).`);
  }
  return new TapfitError(ErrorCodes.STATE, `${LORA_PLUGIN}: plugin.${asked} is built when the trainer sets up: await trainer.setup() (or a first fit) before reading it.`);
}

/**
 * The LoRA plugin: at `setup` it wraps the trainer's model and trains only the adapters
 * (and `modulesToSave`). A tfjs-layers model goes through `applyLora(model, options)`,
 * a segment model through `applyLoraToSegments(model, options)` (the functional twins).
 * Adapter weights are model variables, so checkpoints carry them; the plugin's own
 * state records the adapted layers or variables, modulesToSave and the spec, and a
 * resume with other options is refused. A checkpoint is refused while the adapter is
 * merged. After setup, `plugin.lora` (layers) or `plugin.segmentLora` (segments) is
 * the handle (`plugin.handle` either; each throws, naming the fix, before setup or for the
 * other kind): merge, unload, saveAdapter, and `describe()` for the plan,
 * which is logged at setup only with `verbose: true`. Disposing the trainer frees a
 * segment LoRA's adapters (the trainer owns what setup swaps in).
 */
export function lora(options: LoraPluginOptions): TapfitPlugin & LoraHandles {
  // Validate before any trainer exists.
  checkOptionKeys(`${LORA_PLUGIN}()`, options, [...LORA_KEYS, 'verbose'], {
    dryRun: 'applyLora / applyLoraToSegments only; the plugin logs its plan with verbose: true',
    logger: "applyLora / applyLoraToSegments only; the plugin logs through the trainer's logger",
  });
  const { verbose, ...loraOptions } = options;
  checkFlag('verbose', verbose, 'use the boolean true (log the plan at setup) or false');
  // All of applyLora's checks, so a bad adapterName or seed fails here rather than at setup.
  const { spec, adapter } = resolveOptions(loraOptions);
  let handle: LoraModel | null = null;
  let segmentHandle: LoraSegmentModel | null = null;
  const state = (): LoraCheckpointState => {
    const plan = handle?.plan ?? segmentHandle?.plan;
    return { adapter, spec, targets: plan?.adapted.map((l) => l.path) ?? [], modulesToSave: plan?.saved.map((l) => l.path) ?? [] };
  };
  // A merged model's base kernels hold K + s·A·B while A and B are saved too; a checkpoint
  // (which does not record the merge) would resume unmerged and apply the update twice.
  const refuseMerged = (): void => {
    if (handle?.isMerged || segmentHandle?.isMerged) {
      const which = handle ? 'plugin.lora' : 'plugin.segmentLora';
      throw new TapfitError(
        ErrorCodes.STATE,
        `${LORA_PLUGIN}: cannot save a checkpoint while adapter '${adapter}' is merged into the base weights (a checkpoint pairs the base weights with A and B, so a merged one would apply the update twice on resume); call ${which}.unmerge() first, and merge() again afterwards if needed.`,
      );
    }
  };
  const checkSaved = (saved: PluginState): void => {
    const want = (saved.json ?? {}) as Record<string, unknown>;
    const have = state() as unknown as Record<string, unknown>;
    // What the checkpoint recorded is compared (one written before modulesToSave was recorded still resumes).
    const differ = Object.keys(want).filter((k) => (PATH_KEYS.has(k) ? !samePaths(want[k], have[k]) : JSON.stringify(want[k]) !== JSON.stringify(have[k])));
    if (differ.length) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `${LORA_PLUGIN}: the checkpoint was trained with LoRA ${JSON.stringify(want)}, but this trainer applies ${JSON.stringify(have)} (${differ.join(', ')} differ); resume with the same targets, modulesToSave, rank, alpha and adapter name.`,
      );
    }
  };
  return {
    name: LORA_PLUGIN,
    core: '^0.1.0',
    get lora() {
      if (handle) return handle;
      throw notBuilt('lora', segmentHandle ? 'segments' : null);
    },
    get segmentLora() {
      if (segmentHandle) return segmentHandle;
      throw notBuilt('segmentLora', handle ? 'layers' : null);
    },
    get handle() {
      const h = handle ?? segmentHandle;
      if (h) return h;
      throw notBuilt('handle', null);
    },
    apply({ hooks, logger, trainer }) {
      // Without a seed of its own, the random factor follows the trainer's seed, its default 0 included, so every
      // run is reproducible as a whole. + 1: tfjs's normal draws (the gaussian init, Embedding's B) read 0 as no seed.
      const options = loraOptions.seed === undefined ? { ...loraOptions, seed: trainer.seed + 1 } : loraOptions;
      hooks.setup.tap(LORA_PLUGIN, (ctx) => {
        // A tfjs-layers model is rebuilt with LoRA layers. A model whose segments are its own
        // (a segment model, or a reversible network that also offers a layers view) is
        // adapted through its segments, keeping them (and their inverses).
        const source = isLayersAdapter(ctx.model) ? ctx.model.layersModel : undefined;
        if (source) {
          handle = applyLora(source, { ...options, dryRun: false });
          ctx.replaceModel(fromLayersModel(handle.model));
          if (verbose) logger.info(handle.describe());
        } else {
          segmentHandle = applyLoraToSegments(ctx.model, { ...options, dryRun: false });
          const owned = segmentHandle;
          // The trainer owns what setup swaps in: disposing it frees A, B and unfreezes the base.
          ctx.replaceModel({ ...owned.model, dispose: () => owned.dispose() });
          if (verbose) logger.info(owned.describe());
        }
      });
    },
    saveState(): PluginState {
      refuseMerged();
      return { json: state() };
    },
    // The adapters are model variables; the saved state only has to match this plugin's.
    checkState: checkSaved,
    loadState: checkSaved,
  };
}
