import { Stage } from '../hooks/order';
import { ErrorCodes, TapfitError } from '../errors';
import { pluginsDecorating } from '../plugin/plugin-api';
import type { PluginConflict, TapfitPlugin } from '../plugin/types';
import { Tokens } from '../services/tokens';
import { CORE_VERSION } from '../version';
import { DataParallelBackprop } from './data-parallel-backprop';
import { resolveDataParallelOptions, type DataParallelOptions } from './options';
import { DATA_PARALLEL_PLUGIN, replicableModel } from './replicable';
import { workerLoss } from './worker-loss';
import { ReplicaGroup } from './replica-group';

/** Plugins whose forward the replicas' rebuilt models would not run, or that compute the step their own way. */
const CONFLICTS: PluginConflict[] = [
  { plugin: 'lora', reason: "LoRA swaps in adapted layers the replica workers cannot rebuild, and substitutes the adapted weights in the forward, which the replicas' models would not see" },
  { plugin: 'online-norm', reason: "OnlineNorm's layers normalise with statistics carried from batch to batch, which each replica would keep on its own part" },
  { plugin: 'revsilo', reason: "revsilo's reversible segments are hand-written, and the replica workers rebuild only a tfjs-layers model" },
  { plugin: 'pipeline', reason: 'both replace the Backprop: the pipeline splits the model into stages, dataParallel the batch into parts; choose one' },
  { plugin: 'memory-budget', reason: "the budget counts the main thread's memory, while every replica holds its own model and activations; train without memoryBudget when splitting the batch" },
];

/**
 * Data-parallel replicas (opt-in): each batch is split into `replicas` parts; the main
 * thread computes the gradient of one with core's default backprop while worker threads
 * (each its own TF.js with one thread and a copy of the model) compute the others', and
 * the gradients are combined as the whole batch's before the update, which the main thread
 * applies as usual. The same math as one thread up to float rounding, dropout masks
 * included (each part draws the whole batch's mask rows by core's noise rule). Workers
 * start at setup and stop at `trainer.dispose()`.
 */
export function dataParallel(options: DataParallelOptions = {}): TapfitPlugin {
  const o = resolveDataParallelOptions(options);
  let others: readonly string[] = [];
  let decorators: () => readonly string[] = () => [];
  const backprop = new DataParallelBackprop(o.replicas, o.backend, o.stepTimeoutMs, () => others, () => decorators());
  return {
    name: DATA_PARALLEL_PLUGIN,
    core: `^${CORE_VERSION}`,
    provides: [Tokens.Backprop],
    conflicts: CONFLICTS,
    apply(api) {
      // Core gives an instance to one live trainer at a time (a second is refused, naming
      // 'data-parallel'); once that trainer is disposed or failed to build, the instance
      // serves a new one: its setup starts new workers and lifts the refusal dispose() left.
      backprop.detach();
      others = api.trainer.plugins.filter((p) => p !== DATA_PARALLEL_PLUGIN);
      const { container } = api.services;
      decorators = () => pluginsDecorating(container, Tokens.Loss);
      // A loss function given to the trainer is refused now; a decoration, at setup, when every plugin has applied its own.
      if (!decorators().length) workerLoss(container, o.setupModule);
      api.services.register(Tokens.Backprop, backprop);
      // LAST: the replicas copy the model the other setup taps settled on.
      api.hooks.setup.tap({ stage: Stage.LAST }, async ({ model }) => {
        const loss = workerLoss(container, o.setupModule);
        const layersModel = replicableModel(model);
        const group = await ReplicaGroup.start(layersModel, o, loss, decorators());
        backprop.attach(group, model.segments);
      });
      // A fit's classWeight changes the loss: its first step checks again that the loss is a batch mean.
      api.hooks.fitStart.tap(DATA_PARALLEL_PLUGIN, () => backprop.checkLossNextStep());
    },
    dispose() {
      void backprop.stop(new TapfitError(ErrorCodes.STATE, `${DATA_PARALLEL_PLUGIN}: the trainer was disposed and its replica workers stopped; build a new trainer to train again.`));
    },
  };
}
