import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, fromLayersModel, Stage, TapfitError, type ForwardPass, type PluginState, type Segment, type TapfitPlugin, type TrainerView } from '@tapfit/core';
import { OnlineNorm } from './layer';
import { readFiniteChecks } from './state';
import { replaceBatchNormAs, resolveReplaceOptions, type ReplaceBatchNormOptions } from './replace-batchnorm';
import { matchSavedCalls, savedCallsOf } from './saved-calls';

export const ONLINE_NORM_PLUGIN = 'online-norm';

export type OnlineNormPluginOptions = ReplaceBatchNormOptions;

/**
 * The Online Normalization plugin. At `setup` it swaps the selected BatchNormalization
 * layers of the trainer's tfjs-layers model for OnlineNorm layers (`replaceBatchNorm`,
 * its functional twin), and a `forward` tap passes the executor's `ctx.recomputing` to
 * them, so a recomputed forward does not advance the statistics; a `backward` tap reads
 * the layers' device-side NaN/Inf checks, all in one read-back per step (none with host
 * recurrences, which check on the host). M, V, u, v are model
 * variables, so checkpoints carry them; the plugin's own state is the call counters
 * that error messages and the NaN-check cadence use. Options are validated here, before
 * any trainer exists; the selector is matched against the model at setup.
 *
 * Composition: the swap runs in the PREPARE band, before surgery that wraps layers (LoRA
 * rebuilds the model around its adapters, and its handle must point at the model that
 * trains); the OnlineNorm layers are looked up in the trainer's final model, never kept
 * from the swap, so such later surgery may rebuild them.
 */
export function onlineNorm(options: OnlineNormPluginOptions = {}): TapfitPlugin {
  resolveReplaceOptions(options, ONLINE_NORM_PLUGIN);
  let trainer: TrainerView | undefined;
  /** The OnlineNorm layers of the model the trainer runs now. */
  const layers = (): OnlineNorm[] => {
    const model = trainer?.model.layersModel;
    return model ? onlineNormLayers(model) : [];
  };
  return {
    name: ONLINE_NORM_PLUGIN,
    core: '^0.1.0',
    conflicts: [
      {
        plugin: 'revsilo',
        reason:
          "online-norm swaps a tfjs-layers model's BatchNormalization layers and runs the rebuilt layers model, while revsilo needs reversible segments " +
          "(revBiFPN, reversibleUNet3d) whose normalisation lives inside the reversible segments, where online-norm cannot reach it; the rebuild would drop the segments' inverses",
      },
    ],
    apply(api) {
      trainer = api.trainer;
      api.hooks.setup.tap({ stage: Stage.PREPARE }, (ctx) => {
        const source = ctx.model.layersModel;
        if (!source) {
          throw new TapfitError(
            ErrorCodes.CONFIG,
            `${ONLINE_NORM_PLUGIN}: the trainer's model is a segment model without a tfjs-layers model, so there is no BatchNormalization to replace. ` +
              `Use the OnlineNorm layer (or onlineNormalize) in your segments directly, or pass a tf.LayersModel.`,
          );
        }
        const model = replaceBatchNormAs(ONLINE_NORM_PLUGIN, source, options);
        ctx.replaceModel(fromLayersModel(model));
        api.logger.info(`${ONLINE_NORM_PLUGIN}: replaced BatchNormalization ${onlineNormLayers(model).map((l) => `'${l.name}'`).join(', ')} with OnlineNorm`);
      });
      api.hooks.forward.tap(ONLINE_NORM_PLUGIN, (pass) => passRecomputing(pass, layers()));
      // Device recurrences keep their NaN/Inf checks on the device: read every layer's in one
      // read-back per step, after core has read the loss (on a GPU the checks are done by
      // then) and before any other backward tap or the update, so a failure stops the step
      // (as TAPFIT_E_PLUGIN_FAILED, core's wrapping of a tap's error, with the
      // TAPFIT_E_NON_FINITE error as its cause).
      api.hooks.backward.tap({ stage: Stage.FIRST }, (grads) => {
        readFiniteChecks(layers().map((l) => l.state));
        return grads;
      });
    },
    saveState(): PluginState {
      return { json: { calls: savedCallsOf(layers()) } };
    },
    checkState(state: PluginState): void {
      matchSavedCalls(ONLINE_NORM_PLUGIN, state.json, layers());
    },
    loadState(state: PluginState): void {
      const calls = matchSavedCalls(ONLINE_NORM_PLUGIN, state.json, layers());
      layers().forEach((l, i) => {
        l.state.trainingCalls = calls[i].training;
        l.state.backwardCalls = calls[i].backward;
        l.state.discardUnreadChecks(); // they checked the statistics the checkpoint has just replaced
      });
    },
  };
}

/** Every OnlineNorm layer of a model, nested models included, in layer order. */
export function onlineNormLayers(model: tf.LayersModel): OnlineNorm[] {
  return model.layers.flatMap((l) => (l instanceof OnlineNorm ? [l] : l instanceof tf.LayersModel ? onlineNormLayers(l) : []));
}

/**
 * tfjs-layers only forwards `training` to the layers, so each segment sets the layers'
 * `recomputing` flag from its context for the duration of its forward.
 */
function passRecomputing(pass: ForwardPass, layers: OnlineNorm[]): ForwardPass {
  if (!layers.length) return pass;
  const segments = pass.segments.map(
    (segment): Segment => ({
      ...segment,
      forward(xs, ctx) {
        if (!ctx.recomputing) return segment.forward(xs, ctx);
        layers.forEach((l) => (l.recomputing = true));
        try {
          return segment.forward(xs, ctx);
        } finally {
          layers.forEach((l) => (l.recomputing = false));
        }
      },
    }),
  );
  return { ...pass, segments };
}
