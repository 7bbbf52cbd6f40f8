import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
import * as tf from '@tensorflow/tfjs';
import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { ErrorCodes, pluginCallFailure, TapfitError } from '../errors';
import { createHooks, type HookName, type Hooks } from '../hooks/hooks';
import type { EvaluateInfo, ModelInfo, StepInfo } from '../hooks/types';
import type { MemoryPlan } from '../step/memory-plan';
import { checkForwardPass } from '../step/forward-pass';
import { checkGradients } from '../step/check-gradients';
import { checkMemoryPlan } from '../step/check-plan';
import { forwardSegments, modelVariables, toTrainableModel, trainableVariables, type TrainableModel } from '../model/trainable-model';
import { noiseKey } from '../model/noise-seed';
import { checkModelOption } from './model-option';
import { noTrainablesError } from './no-trainables';
import { checkManifest, tensorLabels, type Manifest, type Position } from '../checkpoint/manifest';
import { memoryBudget, type MemoryBudgetOptions } from '../memory/memory-budget';
import { releaseCheckpointFoldersOf } from '../checkpoint/checkpoint-claim';
import { FileCheckpointer } from '../checkpoint/file-checkpointer';
import { TensorReader } from '../checkpoint/tensor-file';
import { captureCheckpoint, restoreCheckpoint, type TrainerParts } from './snapshot';
import { checkPluginsOption, validatePluginSet, type PluginSpec } from '../plugin/registry';
import { attachPlugins, releasePlugins } from '../plugin/attachment';
import { createPluginApi, sealServices } from '../plugin/plugin-api';
import type { TapfitPlugin, TrainerView } from '../plugin/types';
import { refusePromise } from '../plugin/sync-call';
import { ConsoleLogger, StoreAllPlanner } from '../services/defaults';
import { PlannedBackprop } from '../memory/planned-backprop';
import { assertEngineInternals } from '../backend/engine-internals';
import { installTapeRelease } from '../backend/tape-release';
import { activeWebgpuAdapter, releaseDroppedGpuObjects } from '../backend/webgpu';
import { describeActiveBackend } from '../backend/select';
import { Tokens, type Logger, type LossFn, type OptimizerSpec } from '../services/tokens';
import type { StepTransform } from '../transforms/types';
import type { Batch, DataSource } from '../data/data-source';
import { batchesPerEpoch } from '../data/data-source';
import { failSource } from './fail-source';
import { describeBackprop, describeTrainer, describeUpdate, type TrainerDescription } from './describe';
import { checkDataLabels, resolveLoss, type LossSpec } from './losses';
import { resolveMetrics, type MetricSpec } from './metrics';
import { parseOptions } from '../options';
import { dataEvaluateOptionsSchema, trainerOptionsSchema, type FitOptions, type InferenceOptions, type ParsedFitOptions } from './options';
import { fitDatasetArguments, type FitDatasetOptions } from './fit-dataset';
import { fitInputs, inferenceOptions, isDataSource, labelsTensor, toTensor, withOwnBatching, type FitRunOptions, type TensorLike } from './fit-inputs';
import { FitCallbacks, yieldKeysNote, type FitParams, type Logs } from './callbacks';
import { BatchMeans } from './batch-means';
import { checkContinuation } from './continuation';
import { DatasetData } from '../data/dataset-data';
import { CarriedEpochs, firstBatches, ranOutWarning } from './batch-limits';
import { asModelInputs, asModelTargets, takesOneValue } from './targets';
import { markLabelSource, tensorLabelSource } from '../data/labels';
import { checkSampleAxes } from '../data/tensor-data';
import { epochLine } from './epoch-line';
import { EventLoopTurns } from './event-loop-turns';
import { isModelTraining, markModelTraining } from './training-flag';
import { classWeightLoss, fitLoss, type FitLossState } from './fit-loss';
import { optimizerByName } from '../transforms/by-name';
import type { History } from './history';
import { ChainStepper, MemberOrigins, OptimizerStepper, type Stepper } from './stepper';
import { layersConstraints } from './constraints';
import { everyStepSkipped } from './non-finite';
import { layersPenalty, penalizedLayers } from './regularization';
import { trainingStep, type StepParts } from './step';
import { carryChainState, describeChange, trainableSetChange } from './trainable-set';
import { TrainableFlags } from './trainable-flags';
import { disposeState } from '../transforms/state';
import { compiledSince, compileMark, RECOMPILED_WARNING, type CompileMark } from './recompile';

export interface TrainerOptions {
  /** A tfjs-layers model or a segment model. */
  model: TrainableModel | tf.LayersModel;
  /**
   * A loss name (every name model.compile accepts, plus softmaxCrossEntropy and
   * sigmoidCrossEntropy) or a function returning the batch's loss, or one loss per sample
   * (averaged, as model.fit does).
   */
  loss: LossSpec;
  /**
   * A step transform (or list, chained in order), an optimizer name as model.compile takes it
   * ('sgd', 'momentum', 'adam', 'adamax', 'rmsprop', 'adagrad', 'adadelta': a chain with tfjs's
   * defaults), or a black-box `tf.train` optimizer.
   */
  optimizer: OptimizerSpec;
  /**
   * Plugins, each an instance (`lora({ rank: 8 })`: call the factory) or a plugin class with
   * a no-argument constructor. Checked together before any is applied (names, core range,
   * `requires`, `conflicts`, `provides`); each instance serves one trainer at a time.
   */
  plugins?: readonly PluginSpec[] | undefined;
  /**
   * Metrics computed on the device each step and reported per epoch (train and val_) and by
   * evaluate(): names as model.compile takes them ('accuracy' is logged as 'acc'),
   * `{ name, fn }` metrics or functions. Default none (as model.compile).
   */
  metrics?: readonly MetricSpec[] | MetricSpec | undefined;
  /**
   * A step whose loss is NaN or infinite: 'throw' (default) stops naming the step (and the
   * sample or weights to blame), applying no update; 'skip' skips and counts the step
   * (`trainer.skipped`); 'off' does not read the loss back to check.
   */
  nonFinite?: 'throw' | 'skip' | 'off' | undefined;
  /**
   * A tfjs-layers model's weight constraints (`kernelConstraint: 'maxNorm'`, ...): 'apply'
   * (default) projects each constrained weight after its update, as Keras does; 'ignore'
   * leaves them out, as tfjs's model.fit does (its optimizers bypass them).
   */
  constraints?: 'apply' | 'ignore' | undefined;
  /**
   * Seeds data shuffling and every dropout mask of a training forward (a whole number >= 0,
   * default 0); plugins may derive their own seeds from it. See the core README,
   * "Randomness and reproducibility".
   */
  seed?: number | undefined;
  /** Where the trainer and plugins log (`info`, `warn`): default the console; `new SilentLogger()` mutes it. */
  logger?: Logger | undefined;
  /**
   * Fit training memory into a byte budget: segment-by-segment backward with per-segment
   * `store`/`recompute`/`invert` policies chosen from measurements on `sample` (see the
   * Memory planning section). Fails at setup with TAPFIT_E_MEMORY if no plan fits.
   */
  memoryBudget?: MemoryBudgetOptions | undefined;
}

const isOptimizer = (o: unknown): o is tf.Optimizer => o instanceof tf.Optimizer;

/**
 * Owns the training loop. Per step: batchStart -> forward -> loss -> backward -> step ->
 * batchEnd. The step itself is synchronous and runs inside one tf.tidy; async hooks
 * run only between steps and only when tapped. Nothing is read back from the device
 * per step except the loss for the non-finite guard (off with `nonFinite: 'off'`).
 */
export class Trainer {
  /** This trainer's own DI container (a child of tsyringe's root). */
  readonly container: DependencyContainer;
  readonly plugins: readonly TapfitPlugin[];
  private readonly hooks: Hooks = createHooks();
  private settings: { nonFinite: 'throw' | 'skip' | 'off'; constraints: 'apply' | 'ignore'; seed: number };
  private modelRef: TrainableModel;
  private ready?: Promise<void>;
  private stepper?: Stepper;
  /** What every training step uses, fixed at setup. */
  private stepParts?: StepParts;
  private plan?: MemoryPlan;
  private params: Record<string, tf.Variable> = {};
  /** The `trainable` flags as `params` was taken: trainStep compares them each call. */
  private trainableFlags?: TrainableFlags;
  private stepCount = 0;
  /** trainOnBatch calls so far: the `batch` its hooks see; checkpointed, so a resumed run counts on. */
  private batchCalls = 0;
  private skippedSteps = 0;
  /** The next batch to run; checkpoints save it, fit() starts from it. */
  private pos: Position = { epoch: 0, batch: 0 };
  private stopRequested = false;
  /** Set by Trainer.resume until a fit reaches its final epoch: re-running the fit that was cut finishes its schedule. */
  private resumedSchedule = false;
  /** Models that setup taps swapped in: the trainer disposes them. */
  private readonly ownedModels: TrainableModel[] = [];
  private readonly userModel?: tf.LayersModel;
  /** What model.compile() had set on the caller's model when last looked at: a later compile is named at the next fit. */
  private compiled?: CompileMark;
  /** The plugin the `memoryBudget` option added (not one the user registered), if any. */
  private readonly budgetPlugin?: TapfitPlugin;
  /** The loss as given (a name or a function), for classWeight. */
  private readonly lossSpec: LossSpec;
  /** What the running fit asks of the step's loss (metrics, classWeight); undefined outside fit. */
  private fitState?: FitLossState;
  /** The epoch fit is running: how it is batched and its sums so far (a checkpoint saved inside it holds them). */
  private epochRun?: EpochRun;
  /** Set by dispose(): every later use is refused (a rebuilt setup would start a fresh optimizer state). */
  private disposed = false;
  /** The models the running fit() marked as training (model.fit's own flag), or undefined when no fit runs. */
  private fitting?: readonly tf.LayersModel[];
  /** A save() reading the state: the fit waits for it before its next step, so a checkpoint is one step's state. */
  private capturing?: Promise<unknown>;
  /** save() calls still reading the state (their write not begun): trainStep, which cannot wait for them, is refused meanwhile. */
  private readingSaves = 0;
  /** An evaluation between evaluateStart and evaluateEnd taps (the model may hold a plugin's evaluation weights): a save and fit's next step wait for it, trainStep is refused. */
  private swappedEvaluation?: Promise<unknown>;
  /** Lets timers and signal handlers run during a long fit. */
  private readonly turns = new EventLoopTurns();

  constructor(options: TrainerOptions) {
    const { nonFinite, constraints, seed } = parseOptions('trainer', trainerOptionsSchema, options);
    this.settings = { nonFinite, constraints, seed };
    if (!options.model) throw new TapfitError(ErrorCodes.CONFIG, 'trainer: `model` is required (a tfjs-layers model or a segment model).');
    if (!options.optimizer) throw new TapfitError(ErrorCodes.CONFIG, "trainer: `optimizer` is required (e.g. 'adam', sgd({ lr: 0.1 }) or tf.train.adam()).");
    if (typeof options.optimizer === 'string') optimizerByName(options.optimizer); // an unknown name fails here, listing the names
    checkModelOption(options.model);
    checkPluginsOption(options.plugins);
    this.modelRef = toTrainableModel(options.model);
    this.userModel = this.modelRef.layersModel;
    if (this.userModel) this.compiled = compileMark(this.userModel);
    this.lossSpec = options.loss;
    const outputUnits = this.userModel?.outputs[0]?.shape.at(-1) ?? undefined;
    const metrics = resolveMetrics(options.metrics ?? [], { loss: options.loss, outputUnits: outputUnits ?? undefined });

    const c = (this.container = rootContainer.createChildContainer());
    c.register(Tokens.Optimizer, { useValue: options.optimizer });
    c.register(Tokens.Loss, { useValue: resolveLoss(options.loss) });
    c.register(Tokens.Metrics, { useValue: metrics });
    if (options.logger) c.register(Tokens.Logger, { useValue: options.logger });
    else c.register(Tokens.Logger, { useClass: ConsoleLogger });
    c.register(Tokens.MemoryPlanner, { useClass: StoreAllPlanner });
    c.register(Tokens.Backprop, { useClass: PlannedBackprop });
    // Its saves claim their folder for this trainer until it is disposed (one run per checkpoint folder).
    c.register(Tokens.Checkpointer, { useFactory: () => Object.assign(new FileCheckpointer(), { trainer: this }) });

    const requested = (options.plugins ?? []).map((p) => (typeof p === 'function' ? c.resolve(p) : p));
    // A falsy memoryBudget (`memoryBudget: cond && {...}`) adds no budget.
    this.budgetPlugin = options.memoryBudget ? memoryBudget(options.memoryBudget) : undefined;
    const plugins = this.budgetPlugin ? [this.budgetPlugin, ...requested] : requested;
    validatePluginSet(plugins);
    this.plugins = plugins;
    attachPlugins(plugins, this);
    for (const p of plugins) {
      try {
        refusePromise(p.apply(createPluginApi(p, this.hooks, c, this.view())), p.name, 'apply');
      } catch (err) {
        releasePlugins(plugins, this); // this trainer is never returned: its plugins are free again
        if (err instanceof TapfitError && err.code !== ErrorCodes.PLUGIN_FAILED) throw err;
        throw pluginCallFailure(p.name, 'apply()', err);
      }
    }
  }

  /** The current model (after setup surgery). */
  get model(): TrainableModel {
    return this.modelRef;
  }
  /**
   * The tfjs-layers model this trainer trains: `trainer.model.layersModel`, typed non-optional
   * for saving and predicting after training. After a plugin rebuilt the model at setup
   * (lora, onlineNorm) it is that copy, not the model passed in. A segment model has no
   * tfjs-layers view: that is a TAPFIT_E_STATE error naming what to use instead.
   */
  get layersModel(): tf.LayersModel {
    const m = this.modelRef.layersModel;
    if (!m) {
      throw new TapfitError(
        ErrorCodes.STATE,
        'trainer.layersModel: this trainer trains a segment model, which has no tfjs-layers view. Use trainer.model (its segments and variables), trainer.predict / trainer.evaluate, and trainer.save(dir) for checkpoints.',
      );
    }
    return m;
  }
  /** Updates applied so far. */
  get step(): number {
    return this.stepCount;
  }
  /** The next batch fit() runs: epoch index and batch within the epoch. */
  get position(): Readonly<Position> {
    return { ...this.pos };
  }
  /** The seed of data shuffling. */
  get seed(): number {
    return this.settings.seed;
  }
  /** Steps whose update was skipped (non-finite loss with `nonFinite: 'skip'`, or a `backward` tap returning null, as a delayed-gradient plugin's warm-up does), in fit, trainStep and trainOnBatch. */
  get skipped(): number {
    return this.skippedSteps;
  }
  /** The chain's state by transform name (undefined for a black-box optimizer). */
  get optimizerState(): ChainStepper['state'] | undefined {
    return this.stepper instanceof ChainStepper ? this.stepper.state : undefined;
  }
  /** The trainable variables by name, after setup. */
  get variables(): Readonly<Record<string, tf.Variable>> {
    return this.params;
  }

  resolve<T>(token: InjectionToken<T>): T {
    return this.container.resolve(token);
  }

  private get logger(): Logger {
    return this.container.resolve(Tokens.Logger);
  }

  /** Live, read-only facts for plugins. */
  private view(): TrainerView {
    const self = this;
    return {
      get model() {
        return self.modelRef;
      },
      get backend() {
        return tf.getBackend() ?? 'none';
      },
      get plugins() {
        return self.plugins.map((p) => p.name);
      },
      get step() {
        return self.stepCount;
      },
      get seed() {
        return self.settings.seed;
      },
      get optimizerState() {
        return self.optimizerState;
      },
      stop: () => self.stop(),
    };
  }

  /** Refuses `what` on a disposed trainer. */
  private assertUsable(what: string): void {
    if (this.disposed) {
      throw new TapfitError(ErrorCodes.STATE, `trainer: ${what} on a disposed trainer. Build a new Trainer (or Trainer.resume from a checkpoint) to go on.`);
    }
  }

  /** Runs `setup` taps, seals the hooks, plans memory and builds the update chain. Once. */
  setup(): Promise<void> {
    this.assertUsable('setup()');
    this.ready ??= this.doSetup().catch((err) => {
      this.ready = undefined;
      // The `memoryBudget` option is not a user plugin: surface its error as is.
      const cause = (err as { cause?: unknown }).cause;
      throw this.budgetPlugin && cause instanceof TapfitError && cause.code === ErrorCodes.MEMORY ? cause : err;
    });
    return this.ready;
  }

  private async doSetup(): Promise<void> {
    await tf.ready();
    assertEngineInternals();
    installTapeRelease(); // also where the backend was set with tf.setBackend: a step that throws leaks nothing
    const known = new Set<string>(this.plugins.map((p) => p.name));
    for (const h of Object.values(this.hooks)) for (const n of h.tapNames()) known.add(n);
    for (const h of Object.values(this.hooks)) h.seal(known);

    const before = this.modelRef;
    let model = before;
    const swapped: TrainableModel[] = [];
    const rebuiltBy = new Set<string>();
    try {
      await this.hooks.setup.run({
        get model() {
          return model;
        },
        replaceModel: (m) => {
          model = toTrainableModel(m);
          swapped.push(model);
          const plugin = this.hooks.setup.runningPlugin;
          if (plugin) rebuiltBy.add(plugin);
        },
      });
      this.modelRef = model; // planMemory taps read it through the trainer view
      this.finishSetup(model);
      sealServices(this.container);
    } catch (err) {
      // A failed setup leaves the trainer's model as it was: a retry operates on it afresh, not twice.
      this.modelRef = before;
      this.disposeModels(swapped);
      throw err;
    }
    this.ownedModels.push(...swapped);
    if (model !== before) {
      // A compiled model is a model.fit program's, which goes on calling evaluate, save or
      // predict on it: warn. A program written for tapfit is told, not warned.
      const ported = this.userModel?.optimizer != null;
      this.logger[ported ? 'warn' : 'info'](rebuiltModelWarning([...rebuiltBy], model.layersModel !== undefined));
    }
  }

  /**
   * Plans memory and builds the update chain for the model setup produced, over its
   * trainable variables. With `carry` (the chain before the trainable variables changed),
   * the new chain takes over its state for the variables still trained (carryChainState);
   * if it cannot, this throws and the trainer is as it was.
   */
  private finishSetup(model: TrainableModel, carry?: ChainStepper): void {
    const params: Record<string, tf.Variable> = {};
    for (const v of trainableVariables(model)) params[v.name] = v;
    // Before anything is built: a retry after unfreezing sets up afresh (plugins' setup taps included).
    if (!Object.keys(params).length) throw noTrainablesError(model, 'at setup');
    const info: ModelInfo = { model, segmentNames: model.segments.map((s) => s.name), params };
    // What planMemory and stepTransforms (buildStepper) taps return is checked tap by tap too, naming the plugin.
    this.hooks.planMemory.checkEachTap((plan, plugin) => checkMemoryPlan(plan, info.segmentNames, plugin));
    const plan = this.hooks.planMemory.call(this.resolve(Tokens.MemoryPlanner).plan(info), info);
    if (carry) {
      const stepper = this.buildStepper(info) as ChainStepper;
      try {
        stepper.setState(carryChainState(carry.state, stepper.state, new Set(Object.keys(this.params)), new Set(Object.keys(params))));
      } catch (err) {
        stepper.dispose();
        throw err;
      }
      disposeState(carry.state, stepper.state); // what the variables no longer trained had
      this.stepper = stepper;
    } else {
      this.stepper?.dispose();
      this.stepper = this.buildStepper(info);
    }
    this.params = params;
    this.trainableFlags = new TrainableFlags(model);
    this.plan = plan;
    // What forward and backward taps return is checked tap by tap, naming the plugin.
    this.hooks.forward.checkEachTap((pass, plugin) => checkForwardPass(pass, info.segmentNames, plugin));
    this.hooks.backward.checkEachTap((grads, plugin) => checkGradients(grads, params, plugin));
    this.stepParts = {
      hooks: this.hooks,
      backprop: this.resolve(Tokens.Backprop),
      segments: model.segments,
      variables: params,
      plan: this.plan,
      loss: fitLoss(this.resolve(Tokens.Loss), this.resolve(Tokens.Metrics), () => this.fitState),
      penalty: layersPenalty(model.layersModel),
      constrain: this.settings.constraints === 'apply' ? layersConstraints(model.layersModel) : null,
      stepper: this.stepper,
      nonFinite: this.settings.nonFinite,
    };
  }

  private buildStepper(info: ModelInfo): Stepper {
    const given = this.resolve(Tokens.Optimizer);
    // A model.compile name becomes its chain here, with the backend's epsilon as tfjs uses it.
    const spec = typeof given === 'string' ? optimizerByName(given, { epsilon: tf.backend().epsilon() }) : given;
    if (isOptimizer(spec)) {
      if (this.hooks.stepTransforms.isUsed) {
        throw new TapfitError(
          ErrorCodes.NEEDS_CHAIN,
          `plugin(s) ${this.hooks.stepTransforms.order().join(', ')} change the update chain (hook 'stepTransforms'), which a black-box tf.train optimizer does not have. ` +
            `Pass step transforms instead, e.g. optimizer: sgd({ lr, momentum }).`,
        );
      }
      return new OptimizerStepper(spec);
    }
    const base: StepTransform[] = Array.isArray(spec) ? [...spec] : [spec as StepTransform];
    const origins = new MemberOrigins();
    this.hooks.stepTransforms.checkEachTap((members, plugin, given) => {
      checkChainMembers(members, plugin);
      origins.tapped(given, members, plugin);
    });
    const members = this.hooks.stepTransforms.call(base.flatMap(chainMembers), info);
    return new ChainStepper(members, info.params, origins.of(members));
  }

  /**
   * Inference-mode forward (no state updates) over `x` in batches of `batchSize` (default
   * 32, as model.predict), concatenated. `x` is a tensor or an array of numbers.
   */
  predict(x: TensorLike, options: InferenceOptions = {}): tf.Tensor {
    this.assertUsable('predict()');
    const { batchSize } = inferenceOptions('predict', options);
    const xs = toTensor(x, 'predict: x');
    try {
      return tf.tidy(() => {
        const n = xs.shape[0];
        const parts: tf.Tensor[] = [];
        for (let start = 0; start === 0 || start < n; start += batchSize) {
          // Each batch in its own tidy: its activations are freed before the next batch runs.
          parts.push(
            tf.tidy(() => {
              const batch = asModelInputs(n <= batchSize ? xs : tf.slice(xs, start, Math.min(batchSize, n - start)), this.modelRef.inputShape);
              return forwardSegments(this.modelRef, batch, { training: false, recomputing: false, step: this.stepCount });
            }),
          );
        }
        return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
      });
    } finally {
      if (xs !== x) xs.dispose();
    }
  }

  /**
   * Trains, in either form:
   *
   * - `fit(x, y, { epochs, batchSize, validationSplit, validationData, shuffle, callbacks,
   *   verbose, initialEpoch, classWeight })` as model.fit (x, y tensors or arrays);
   * - `fit(data, options)` with a tapfit data source (tensorData, arrayData, datasetData).
   *
   * Trains `epochs` epochs from `position`, as each model.fit call does (numbered on: epoch
   * 0, 1, 2, ... of a loop of `{ epochs: 1 }` fits; an epoch a stop left unfinished is
   * continued and counts as the first). With `initialEpoch`, and in the first fit after
   * `Trainer.resume`, `epochs` is the final epoch (Keras), so rerunning the fit that was cut
   * finishes the same schedule (nothing, when the checkpoint had finished it). Returns tf.History's
   * shape: `{ epoch, history: { loss, acc, val_loss, val_acc, ... }, params }`. Per step
   * nothing is read back beyond the non-finite guard; loss and metrics are summed on the
   * device and read once per epoch.
   */
  fit(data: DataSource, options?: FitOptions): Promise<History>;
  fit(x: TensorLike, y: TensorLike, options?: FitOptions): Promise<History>;
  async fit(a: DataSource | TensorLike, b?: TensorLike | FitOptions, c?: FitOptions): Promise<History> {
    this.assertUsable('fit()');
    const models = this.startFitting();
    try {
      const inputs = fitInputs(a, b, c);
      for (const note of inputs.notes) this.logger[note.level](note.message);
      try {
        const options = await withOwnBatching(inputs);
        return await this.runFit(inputs.data, inputs.validation, options, options.verbose ?? (inputs.modelForm ? 1 : 0));
      } finally {
        // An element a dataset's check read and no epoch took (the fit failed before training or validating on it).
        for (const d of [inputs.data, inputs.validation]) if (d instanceof DatasetData) d.release();
        inputs.dispose();
      }
    } finally {
      for (const m of models) markModelTraining(m, false);
      this.fitting = undefined;
    }
  }

  /**
   * model.fitDataset(dataset, args): `dataset` yields batches `{ xs, ys }` (`ds.batch(n)`, or
   * `[xs, ys]` pairs) and is trained on as model.fitDataset does: its own batch size, in its
   * order, with `batchesPerEpoch` and `validationBatches` as fitDataset reads them;
   * `validationData` is a batched dataset or `[x, y]`; `verbose` defaults to 1, as
   * fitDataset's. The same as `fit(datasetData(dataset, { batched: true }), options)`, which
   * refuses what it refuses with the same messages. Returns the History.
   */
  async fitDataset(dataset: tf.data.Dataset<tf.TensorContainer>, options: FitDatasetOptions = {}): Promise<History> {
    this.assertUsable('fitDataset()');
    const given = fitDatasetArguments(dataset, options);
    return this.fit(given.data, given.options);
  }

  /**
   * Marks this fit as running, on the trainer and on its tfjs-layers models with model.fit's
   * own flag, so a second fit of either (this trainer's, another trainer's on the same
   * model, or model.fit) is refused instead of interleaving its steps with this one's.
   */
  private startFitting(): readonly tf.LayersModel[] {
    if (this.fitting) {
      throw new TapfitError(ErrorCodes.STATE, 'trainer: fit() is already running on this trainer. Await it (or call stop() and await it) before starting another, as model.fit requires.');
    }
    const models = [...new Set([this.userModel, this.modelRef.layersModel])].filter((m): m is tf.LayersModel => m !== undefined);
    if (models.some(isModelTraining)) {
      throw new TapfitError(
        ErrorCodes.STATE,
        'trainer: the model is being trained by another fit (model.fit, or another Trainer on the same model). Await that fit before starting this one.',
      );
    }
    for (const m of models) markModelTraining(m, true);
    this.fitting = models;
    return models;
  }

  private async runFit(given: DataSource, validation: DataSource | undefined, o: FitRunOptions, verbose: number): Promise<History> {
    // batchesPerEpoch (model.fitDataset's): one read of the data carried across the epochs.
    const carried = o.batchesPerEpoch === undefined ? undefined : new CarriedEpochs(given, o.batchesPerEpoch);
    const before = { pos: this.pos, resumed: this.resumedSchedule, steps: this.stepCount + this.skippedSteps };
    try {
      return await this.runFitOn(carried ?? given, validation, o, verbose);
    } catch (err) {
      // Refused before its first step (the first read failed, the first batch was refused): nothing trained, so
      // the position (an initialEpoch it moved to, an epoch's sums it dropped) and the resumed schedule stay as they were.
      if (this.stepCount + this.skippedSteps === before.steps) {
        this.pos = before.pos;
        this.resumedSchedule = before.resumed;
      }
      throw err;
    } finally {
      await carried?.close();
    }
  }

  private async runFitOn(data: DataSource, validation: DataSource | undefined, o: FitRunOptions, verbose: number): Promise<History> {
    await this.setup();
    this.followTrainableSet('fit', 'fit');
    if (this.userModel && this.compiled && compiledSince(this.compiled, this.userModel)) {
      this.logger.warn(RECOMPILED_WARNING);
      this.compiled = compileMark(this.userModel); // once per compile
    }
    this.checkDataShape(data);
    if (validation) this.checkDataShape(validation);
    if (o.validationData !== undefined && o.validationSplit !== undefined) this.logger.warn('fit: both validationData and validationSplit given; validating on validationData (as model.fit does).');
    const loss = o.classWeight ? this.classWeighted(o.classWeight) : undefined;
    const callbacks = new FitCallbacks(
      o.callbacks,
      this.modelRef.layersModel,
      {
        evaluate: (x, y, args) => this.evaluate(x as TensorLike, y as TensorLike, args),
        predict: (x, args) => this.predict(x as TensorLike, args),
      },
      this.fitting, // the user's model (and a model setup swapped in): their own stopTraining stops the fit too
    );
    const yieldNote = yieldKeysNote(o.callbacks);
    if (yieldNote) this.logger.warn(yieldNote);
    const names = ['loss', ...this.resolve(Tokens.Metrics).map((m) => m.name)];
    const resumed = this.resumedSchedule;
    if (o.initialEpoch !== undefined && o.initialEpoch !== this.pos.epoch) {
      // After Trainer.resume an initialEpoch behind the checkpoint, with a final epoch beyond it, is
      // the cut fit run again: it continues from the checkpoint instead of training those epochs
      // again on trained weights. (A final epoch the checkpoint has passed is a new schedule.)
      if (resumed && o.initialEpoch < this.pos.epoch && o.epochs > this.pos.epoch) this.logger.warn(`fit: initialEpoch ${o.initialEpoch} is behind the resumed checkpoint (epoch ${this.pos.epoch}, batch ${this.pos.batch}), so this fit continues from the checkpoint; pass initialEpoch: ${this.pos.epoch} to say so.`);
      else this.pos = { epoch: o.initialEpoch, batch: 0 };
    }
    this.pos = checkContinuation(this.pos, o, names, data.size);
    // model.fit habit: each call trains `epochs` epochs from the position, numbered on so each
    // gets its own shuffle (an epoch a stop left unfinished counts as the first). Keras'
    // final-epoch semantics with an explicit initialEpoch, and in the first fit after
    // Trainer.resume when `epochs` can be the cut fit's final epoch (not behind the checkpoint,
    // nor equal to an epoch it left unfinished), so that re-running the fit that was cut
    // finishes its schedule while a loop of fit({ epochs: 1 }) goes on one epoch per call.
    const finalEpoch = o.initialEpoch !== undefined || (resumed && (o.epochs > this.pos.epoch || (o.epochs === this.pos.epoch && this.pos.batch === 0)));
    const epochs = finalEpoch ? o.epochs : this.pos.epoch + o.epochs;
    if (resumed && !finalEpoch) this.resumedSchedule = false;
    if (resumed && o.initialEpoch === undefined && epochs <= this.pos.epoch) {
      this.logger.warn(
        `fit: the resumed checkpoint has reached epoch ${this.pos.epoch}, the final epoch this fit asks for (in the first fit after Trainer.resume, epochs is the final epoch, so that re-running the fit that was cut finishes its schedule): nothing to train. ` +
          `For more epochs pass initialEpoch: ${this.pos.epoch} with epochs: ${this.pos.epoch} + how many.`,
      );
    }
    this.stopRequested = false;
    this.turns.restart();
    const measured = this.plan?.measuredBatchSize;
    if (measured !== undefined && measured !== o.batchSize) {
      this.logger.warn(
        `fit: the memory plan was measured on batches of ${measured} samples but fit uses batchSize ${o.batchSize}; its predicted peak holds only for ${measured}. ` +
          `Give memoryBudget a sample of ${o.batchSize} samples.`,
      );
    }
    const stepsPerEpoch = o.batchesPerEpoch ?? batchesPerEpoch(data, o.batchSize) ?? -1;
    const params: FitParams = {
      epochs,
      initialEpoch: this.pos.epoch,
      samples: data.size,
      steps: null,
      batchSize: o.batchSize,
      verbose,
      doValidation: validation !== undefined,
      metrics: validation ? [...names, ...names.map((n) => `val_${n}`)] : names,
    };
    const history: History = { epoch: [], history: {}, params };
    const span = { from: { epoch: this.pos.epoch, batch: this.pos.batch }, to: epochs }; // batchesPerEpoch's run-out warning
    callbacks.begin(params);
    await this.hooks.fitStart.run({ epochs, stepsPerEpoch, initialEpoch: this.pos.epoch });
    await callbacks.trainBegin();
    try {
      while (this.pos.epoch < epochs && !this.stopRequested) {
        const epoch = this.pos.epoch;
        const started = performance.now();
        // batchesPerEpoch's data that ended with the last epoch: this epoch is not begun, so every
        // epochStart / onEpochBegin has its end (fitDataset instead begins and ends the epochs left, empty).
        if (this.pos.batch === 0 && data instanceof CarriedEpochs && (await data.endedBeforeNextEpoch())) {
          this.logger.warn(ranOutWarning(data, epoch, span));
          break;
        }
        if (this.pos.batch === 0) {
          await this.hooks.epochStart.run({ epoch });
          if (verbose) this.logger.info(`Epoch ${epoch + 1} / ${epochs}`);
        }
        await callbacks.epochBegin(epoch);
        const logs = await this.runEpoch(data, epoch, o, names, callbacks, loss);
        if (!logs) break; // stopped mid-epoch: the epoch is unfinished and a later fit continues it
        this.pos = { epoch: epoch + 1, batch: 0 };
        // An epoch the data ran out in is not validated (model.fitDataset's order: it validates once the count is reached).
        const ranOut = data instanceof CarriedEpochs && data.ranOut;
        if (validation && !ranOut) {
          const val = await this.validate(validation, o, epoch);
          for (const [k, v] of Object.entries(val)) logs[`val_${k}`] = v;
        }
        await this.hooks.epochEnd.run({ epoch, logs });
        if (verbose) this.logger.info(epochLine(performance.now() - started, data.size ?? stepsPerEpoch, logs));
        await callbacks.epochEnd(epoch, logs);
        history.epoch.push(epoch);
        for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
        if (ranOut) {
          this.logger.warn(ranOutWarning(data as CarriedEpochs, epoch, span));
          break;
        }
        if (callbacks.stopRequested) break;
      }
    } finally {
      if (this.pos.epoch >= epochs) this.resumedSchedule = false;
    }
    await this.hooks.fitEnd.run({ history });
    await callbacks.trainEnd();
    return history;
  }

  /**
   * At the start of each fit, and before a step when a `trainable` flag moved: picks up a
   * changed set of trainable variables (`layer.trainable` set since the last fit or step,
   * the fine-tuning recipe), where model.fit needs model.compile() again. The variables
   * still trained keep their optimizer state, new ones start from the chain's init, those
   * no longer trained drop theirs. Refused (TAPFIT_E_STATE, nothing changed) where the
   * trainer cannot tell what follows the variables: with plugins (their state may be per
   * variable), with the memoryBudget option (its plan was measured for the old set), a
   * black-box tf.train optimizer (its state is kept by position in the variable list), or a
   * chain member whose state is not one entry per variable.
   */
  private followTrainableSet(caller: 'fit' | 'trainStep' | 'trainOnBatch', since: 'fit' | 'step'): void {
    const now = trainableVariables(this.modelRef);
    // Refused before the set is followed, so unfreezing again finds the trainer (and its optimizer state) as it was.
    if (!now.length) throw noTrainablesError(this.modelRef, `any more (\`trainable\` was set since the last ${since}; nothing was changed)`);
    const change = trainableSetChange(this.params, now);
    if (!change) {
      this.trainableFlags = new TrainableFlags(this.modelRef); // flags moved and back: the same set
      return;
    }
    const refuse = (why: string): never => {
      throw new TapfitError(
        ErrorCodes.STATE,
        `${caller}: the model's trainable variables changed since the trainer was set up (layer.trainable was set; ${describeChange(change)}), and ${why}. ` +
          'Build a new Trainer({ model, ... }) after changing trainable (where model.fit needs model.compile() again): the weights are in the model; the new trainer starts a fresh optimizer state.',
      );
    };
    // The memoryBudget option is not a plugin the user registered; its plan is what no longer holds.
    const budget = this.budgetPlugin;
    const registered = this.plugins.filter((p) => p !== budget);
    const reasons: string[] = [];
    if (registered.length) {
      reasons.push(
        `the trainer does not follow that with plugins (${registered.map((p) => p.name).join(', ')}): their state may be kept per variable ` +
          "(a plugin that freezes layers leaves layer.trainable alone and drops the layers' gradients in a backward tap instead)",
      );
    }
    if (budget) {
      reasons.push(
        "the memoryBudget option's memory plan was measured for the old trainable set (which segments get gradients, and their size) and is not measured again; a new Trainer with memoryBudget measures the new set",
      );
    }
    if (reasons.length) refuse(reasons.join('; and '));
    if (!(this.stepper instanceof ChainStepper)) refuse('a black-box tf.train optimizer keeps its state by position in the variable list, so it cannot follow that');
    try {
      this.finishSetup(this.modelRef, this.stepper as ChainStepper);
    } catch (err) {
      if (err instanceof TapfitError && err.code === ErrorCodes.STATE) refuse(err.message);
      throw err;
    }
    this.logger.info(
      `${caller}: the model's trainable variables changed since the last ${since} (${describeChange(change)}); training the new set, as model.compile() again would. ` +
        'Variables still trained keep their optimizer state; newly trainable ones start it afresh.',
    );
  }

  /** Ask fit() to return after the current batch (early stopping, or to save and resume later). */
  stop(): void {
    this.stopRequested = true;
  }

  private classWeighted(classWeight: Record<string, number>) {
    if (this.resolve(Tokens.Loss) !== resolveLoss(this.lossSpec)) {
      throw new TapfitError(ErrorCodes.CONFIG, 'fit: classWeight cannot be combined with a plugin that decorates the loss (it would bypass the decoration); weigh the classes inside that plugin instead.');
    }
    const units = this.modelRef.layersModel?.outputs[0]?.shape.at(-1) ?? undefined;
    return classWeightLoss(this.lossSpec, classWeight, units === 1 ? 2 : units ?? undefined);
  }

  /**
   * One epoch from the current position: the epoch's mean loss and metrics (one read-back),
   * or undefined when stop() came before the data ran out (the position then holds the
   * epoch so far, for a later fit or a checkpoint to continue it). (batchesPerEpoch's
   * carried data that has ended is caught before the epoch begins.)
   */
  private async runEpoch(
    data: DataSource,
    epoch: number,
    o: { batchSize: number; shuffle: boolean; ownBatches?: boolean },
    names: readonly string[],
    callbacks: FitCallbacks,
    loss: LossFn | undefined,
  ): Promise<Logs | undefined> {
    const startBatch = this.pos.batch;
    const soFar = this.pos.epochSoFar;
    const carried = data instanceof CarriedEpochs ? data : undefined;
    // batchesPerEpoch: an epoch stopped in an earlier fit continues where that fit left the data.
    if (carried && startBatch > 0) carried.resumeAt = soFar?.carriedRead;
    const it = data.batches({ batchSize: o.batchSize, shuffle: o.shuffle, seed: this.settings.seed, epoch, startBatch, ownBatches: o.ownBatches });
    const { batchStart, batchEnd } = this.hooks;
    const means = startBatch > 0 && soFar ? BatchMeans.continuing(soFar.sums, soFar.samples) : new BatchMeans();
    const pending: tf.Tensor1D[] = [];
    this.fitState = { metricSink: names.length > 1 ? (v) => pending.push(v) : undefined, loss };
    const run: EpochRun = (this.epochRun = { batchSize: o.batchSize, shuffle: o.shuffle, names, means, dataSize: data.size });
    let batch = 0;
    let nonFiniteSkips = 0;
    try {
      let r = await it.next();
      if (carried && !r.done) {
        // Counted from the steps, not the reads: a stop fetches one batch more than it trains.
        const before = carried.position - 1;
        run.carriedRead = () => before + (this.pos.batch - startBatch);
      }
      for (; !r.done && !this.stopRequested; r = await it.next(), batch++) {
        const info: StepInfo = { epoch, batch: startBatch + batch, step: this.stepCount };
        const size = r.value.x.shape[0];
        try {
          if (batch === 0) this.checkBatchShape(r.value.x);
          if (batchStart.isUsed) await batchStart.run(info);
          await callbacks.batchBegin(info.batch, { batch: info.batch, size });
        } catch (err) {
          tf.dispose([r.value.x, r.value.y]); // the step never took the batch
          throw err;
        }
        if (this.capturing || this.swappedEvaluation) await this.stepTurn();
        const { loss: value, skipped, nonFinite } = this.followedStep(r.value, info, 'fit'); // a callback may have set layer.trainable
        if (nonFinite) nonFiniteSkips++;
        this.pos = { epoch, batch: info.batch + 1 };
        const metrics = pending.splice(0);
        let values: tf.Tensor1D | undefined;
        try {
          // A Backprop may call the loss more than once (a pipeline's delayed last stage: the backward, then the
          // forward's value it returns); the metrics logged are those of the last call, the value's.
          const last = metrics.at(-1);
          values = tf.tidy(() => (last ? tf.concat([tf.reshape(value, [1]), last]) : tf.reshape(value, [1])) as tf.Tensor1D);
          if (!nonFinite) means.add(values, size); // the epoch's means are over the steps that were applied
          if (batchEnd.isUsed) await batchEnd.run({ ...info, skipped, loss: () => value.dataSync()[0] });
          if (callbacks.wantsBatches) {
            const read = values.dataSync(); // only when a callback handles batches (model.fit's CustomCallback reads them too)
            await callbacks.batchEnd(info.batch, { batch: info.batch, size, ...Object.fromEntries(names.map((n, i) => [n, read[i]])) });
          }
          // model.fit reads its stopTraining after every batch, whoever set it (a callback, a timer).
          if (callbacks.stopRequested) this.stopRequested = true;
        } finally {
          tf.dispose([value, ...metrics]);
          values?.dispose();
        }
        await releaseDroppedGpuObjects();
        await this.turns.maybeTurn(); // timers and signal handlers (a stop()) run during a long fit, once a second
      }
      if (!r.done) {
        // Stopped with data left. The batch fetched before the check never reaches a step, which would free it.
        tf.dispose([r.value.x, r.value.y]);
        this.pos = await this.positionNow();
        return undefined;
      }
      if (batch === 0 && startBatch === 0) {
        throw new TapfitError(ErrorCodes.CONFIG, `fit: the data produced no batches in epoch ${epoch}; check that the data source is not empty.`);
      }
      // The whole epoch trained nothing (a continued epoch counts the steps applied before it was stopped: its means hold them).
      if (batch > 0 && nonFiniteSkips === batch && means.count === 0) throw everyStepSkipped(epoch, startBatch + batch);
      const values = await means.means();
      if (!values) {
        throw new TapfitError(
          ErrorCodes.CONFIG,
          `fit: epoch ${epoch} was stopped after batch ${startBatch - 1} but the data now ends before batch ${startBatch}; continue it with the data it started with, or start the next epoch with initialEpoch: ${epoch + 1}.`,
        );
      }
      return Object.fromEntries(names.map((n, i) => [n, values[i]]));
    } catch (err) {
      // Cut by a throw after steps of this epoch: the position records them as stop() does (see positionAfterFailure).
      if (this.pos.batch > startBatch) this.pos = await this.positionAfterFailure();
      throw await failSource(it, err);
    } finally {
      this.fitState = undefined;
      this.epochRun = undefined;
      tf.dispose(pending);
      means.dispose();
      await it.return?.(); // stopped with data left: the source frees what it holds (a datasetData shuffle buffer)
    }
  }

  /**
   * What a fit step and trainOnBatch wait for: a save() started meanwhile (from a callback,
   * a timer) reads the state before the update, and an evaluation with a plugin's weights
   * swapped in (an EMA's) swaps them back, since its evaluateEnd restores the weights cloned
   * at its start and would drop the update. Both are checked again after each wait (a save
   * may start while an evaluation is waited for). A capture is waited for once: its save
   * keeps `capturing` set while it writes.
   */
  private async stepTurn(): Promise<void> {
    let captured: Promise<unknown> | undefined;
    for (;;) {
      const busy = this.swappedEvaluation ?? (this.capturing === captured ? undefined : this.capturing);
      if (!busy) return;
      if (busy === this.capturing) captured = busy;
      await busy.catch(() => undefined);
    }
  }

  /**
   * An epoch's validation: the whole validation data, or with validationBatches (model.fitDataset's)
   * its first batches. A source with its own batches (a batched dataset) is read as they come,
   * as fitDataset's evaluateDataset reads it, so validationBatches counts those batches.
   */
  private async validate(validation: DataSource, o: ParsedFitOptions, epoch: number): Promise<Record<string, number>> {
    const info: EvaluateInfo = { kind: 'validation', epoch };
    const own = await validation.ownBatchSize?.();
    const source = o.validationBatches === undefined ? validation : firstBatches(validation, o.validationBatches);
    return this.evaluateData(source, { batchSize: own ?? o.batchSize }, info, own !== undefined);
  }

  /** The position, with the running epoch's batching and sums so far when it is inside one (one read-back). */
  private async positionNow(): Promise<Position> {
    const run = this.epochRun;
    if (!run || this.pos.batch === 0) return this.pos;
    const sums = await run.means.read();
    return sums ? { ...this.pos, epochSoFar: { batchSize: run.batchSize, shuffle: run.shuffle, names: [...run.names], ...sums, ...dataOf(run) } } : this.pos;
  }

  /**
   * The position after a throw inside an epoch (a callback, a plugin's tap, a failed read), as
   * stop() leaves it: how the epoch was batched and its sums so far, so that a later fit or a
   * resume continues it with that batching (or is refused) and logs its means over the whole
   * epoch. Where the sums cannot be read back (a failing backend) or none were added (only
   * non-finite steps), the batching alone with the sums dropped (the means then cover the rest
   * of the epoch): the fit's own error is the one thrown.
   */
  private async positionAfterFailure(): Promise<Position> {
    const run = this.epochRun!;
    try {
      const pos = await this.positionNow();
      if (pos.epochSoFar) return pos;
    } catch {
      // keep the fit's error
    }
    return { ...this.pos, epochSoFar: { batchSize: run.batchSize, shuffle: run.shuffle, names: [...run.names], sums: run.names.map(() => 0), samples: 0, ...dataOf(run) } };
  }

  /**
   * One synchronous step on one batch, for custom loops (the port of `optimizer.minimize`;
   * trainOnBatch is model.trainOnBatch's): `batch` is `{ x, y }` (tensors of the model's input and its
   * targets), `info` is `{ epoch, batch, step }` (what hooks see; `step: trainer.step` is
   * the next update's). Call `await trainer.setup()` first. The caller's `x` and `y` are
   * left alone, also when the call is refused or throws: the loop may pass the same
   * tensors again. Returns the batch loss (the caller disposes it), whether the update was
   * skipped, and whether that was for a non-finite loss (nonFinite: 'skip'). Refused while a
   * fit runs on this trainer or its model (from a callback: the update would land inside
   * fit's epoch), and (TAPFIT_E_STATE) while an evaluation not yet awaited has a plugin's
   * evaluation weights swapped in or a save() not yet awaited reads the state: await it first.
   */
  trainStep(b: Batch, info: StepInfo): { loss: tf.Scalar; skipped: boolean; nonFinite: boolean } {
    this.assertUsable('trainStep()');
    this.refuseWhileFitting('trainStep()');
    if (!this.stepParts) throw new TapfitError(ErrorCodes.CONFIG, 'trainer: call `await trainer.setup()` (or fit) before trainStep().');
    if (this.readingSaves > 0) {
      // A step cannot wait here (it is synchronous), and one now could land between the save's reads of the weights and of the optimizer state.
      throw new TapfitError(
        ErrorCodes.STATE,
        'trainStep(): a save() not yet awaited is reading the state; a step now could reach the checkpoint half-applied (weights of one step, optimizer state of another). ' +
          'Nothing was changed: await the save first (await trainer.save(dir)), then call trainStep().',
      );
    }
    if (this.swappedEvaluation) {
      // A step cannot wait here (it is synchronous), and one now would be undone by evaluateEnd.
      throw new TapfitError(
        ErrorCodes.STATE,
        "trainStep(): an evaluation with a plugin's evaluation weights swapped in (evaluateStart/evaluateEnd taps, e.g. an EMA's) is running; " +
          'a step now would update those weights, and evaluateEnd would then put back the training weights saved at its start, dropping the update. ' +
          'Nothing was changed: await the evaluation first (await trainer.evaluate(data)), then call trainStep().',
      );
    }
    // The step frees the batch it runs on: it gets its own handles (tf.clone shares the data, copies nothing).
    return this.followedStep({ ...b, x: tf.clone(b.x), y: tf.clone(b.y) }, info, 'trainStep');
  }

  /**
   * model.trainOnBatch(x, y): one update on one batch. Resolves to the batch loss, or to
   * `[loss, ...metrics]` when the trainer has metrics: their values on this batch's training
   * forward, before the update (fit's per-step metrics, from the same forward; no second
   * one). Sets the trainer up on first use. Like trainStep it runs the `forward` and
   * `backward` taps and the update chain, advances `step`, follows a changed
   * `layer.trainable`, and leaves the caller's `x` and `y` alone; `position` stays (there
   * are no epochs). Hooks see `{ epoch: position.epoch, batch: calls so far, step }`. One
   * read-back per call, as model.trainOnBatch. Refused while a fit runs on this trainer or
   * its model. A call whose update a plugin held back (a delayed-gradient plugin's warm-up,
   * nonFinite: 'skip') still resolves to the batch's loss, so the return value cannot tell:
   * `trainer.skipped` counts the call and `trainer.step` does not advance.
   */
  async trainOnBatch(x: TensorLike, y: TensorLike): Promise<number | number[]> {
    this.assertUsable('trainOnBatch()');
    this.refuseWhileFitting('trainOnBatch()');
    await this.setup();
    // A save() not awaited reads the state before this update; an evaluate(data) not awaited may hold a plugin's evaluation weights (an EMA's).
    if (this.capturing || this.swappedEvaluation) await this.stepTurn();
    // Checked again after the waits: a fit or a dispose may have come in between.
    this.assertUsable('trainOnBatch()');
    this.refuseWhileFitting('trainOnBatch()');
    if (this.userModel && this.compiled && compiledSince(this.compiled, this.userModel)) {
      this.logger.warn(RECOMPILED_WARNING.replace(/^fit:/, 'trainOnBatch:'));
      this.compiled = compileMark(this.userModel);
    }
    const values = this.batchUpdate(x, y);
    try {
      const read = Array.from(await values.data());
      return read.length === 1 ? read[0] : read;
    } finally {
      values.dispose();
    }
  }

  /** trainOnBatch's step, synchronous: `[loss, ...metrics]` of the batch, kept. */
  private batchUpdate(x: TensorLike, y: TensorLike): tf.Tensor1D {
    const xs = toTensor(x, 'trainOnBatch: x');
    let ys: tf.Tensor;
    try {
      ys = labelsTensor(y, 'trainOnBatch: y'); // a flat list of whole numbers is class indices, as fit reads it
    } catch (err) {
      if (xs !== x) xs.dispose();
      throw err;
    }
    const pending: tf.Tensor1D[] = [];
    try {
      this.checkBatchShape(xs, 'trainOnBatch: x'); // first: an x without its batch axis would read as a sample-count mismatch
      checkSampleAxes(xs, ys, 'trainOnBatch');
      // fit's way to the metrics: the loss the Backprop calls stacks them on the step's own prediction.
      const metrics = this.resolve(Tokens.Metrics);
      this.fitState = { metricSink: metrics.length ? (v) => pending.push(v) : undefined };
      const info: StepInfo = { epoch: this.pos.epoch, batch: this.batchCalls, step: this.stepCount };
      // The step frees the batch it runs on: it gets its own handles of the caller's tensors.
      const { loss } = this.followedStep({ x: tf.clone(xs), y: tf.clone(ys) }, info, 'trainOnBatch');
      this.batchCalls++;
      try {
        // A Backprop may call the loss more than once (see runEpoch): the last call's metrics go with the value.
        const last = pending.at(-1);
        return tf.tidy(() => (last ? tf.concat([tf.reshape(loss, [1]), last]) : tf.reshape(loss, [1])) as tf.Tensor1D);
      } finally {
        loss.dispose();
      }
    } finally {
      this.fitState = undefined;
      tf.dispose(pending);
      if (xs !== x) xs.dispose();
      if (ys !== y) ys.dispose();
    }
  }

  /**
   * trainOnBatch or trainStep between fit's steps would update in the middle of its epoch (and
   * write into its metrics): tapfit refuses it. tfjs does not: model.trainOnBatch (and
   * optimizer.minimize, trainStep's counterpart) never look at model.fit's isTraining flag, so
   * a tfjs program that calls them from a fit callback trains there, and throws here after the port.
   */
  private refuseWhileFitting(what: 'trainStep()' | 'trainOnBatch()'): void {
    // The tfjs call the port replaced: trainStep is optimizer.minimize's port, trainOnBatch model.trainOnBatch's.
    const tfjsCall = what === 'trainStep()' ? 'optimizer.minimize' : 'model.trainOnBatch';
    const why = `(${tfjsCall} allows this; tapfit refuses it because the update would land inside the fit's epoch and its running metrics. To add work to each of fit's steps, write a plugin.)`;
    if (this.fitting) {
      throw new TapfitError(ErrorCodes.STATE, `trainer: ${what} was called while fit() runs on this trainer (from a callback or a hook?). Await the fit, then call it. ${why}`);
    }
    const models = [this.userModel, this.modelRef.layersModel].filter((m): m is tf.LayersModel => m !== undefined);
    if (models.some(isModelTraining)) {
      throw new TapfitError(ErrorCodes.STATE, `trainer: ${what} was called while another fit trains the model (model.fit, or another Trainer on the same model). Await that fit first. ${why}`);
    }
  }

  /**
   * A step on the trainable set as it is now: where a `trainable` flag moved (read on the
   * host each step, no device work), the new set is followed first, or refused with the
   * batch freed. The batch is the trainer's own (fit's batches, trainStep's handles).
   */
  private followedStep(b: Batch, info: StepInfo, caller: 'fit' | 'trainStep' | 'trainOnBatch'): { loss: tf.Scalar; skipped: boolean; nonFinite: boolean } {
    if (this.trainableFlags?.changed()) {
      try {
        this.followTrainableSet(caller, 'step');
      } catch (err) {
        tf.dispose([b.x, b.y]);
        throw err;
      }
    }
    return this.stepOwning(b, info);
  }

  /** One step on a batch the trainer owns, once it is known usable and set up: disposes the batch whatever happens. */
  private stepOwning(b: Batch, info: StepInfo): { loss: tf.Scalar; skipped: boolean; nonFinite: boolean } {
    const parts = this.stepParts as StepParts; // set by setup, which fit and trainStep require
    const y = asModelTargets(b.y, this.modelRef.outputShape);
    if (y !== b.y) b.y.dispose();
    const x = asModelInputs(b.x, this.modelRef.inputShape);
    if (x !== b.x) b.x.dispose();
    // Every training step run so far, applied or not, names this batch's noise: it advances on
    // skipped and delayed updates too, and both counts are checkpointed, so a resume redraws.
    const key = noiseKey(this.settings.seed, this.stepCount + this.skippedSteps);
    const { loss, applied, nonFinite } = trainingStep(parts, { ...b, x, y }, info, key);
    if (applied) this.stepCount++;
    else this.skippedSteps++;
    return { loss, skipped: !applied, nonFinite };
  }

  /**
   * Loss and metrics in inference mode, in either form:
   *
   * - `evaluate(x, y, { batchSize = 32 })` as model.evaluate: a Scalar (the loss) when the
   *   trainer has no metrics, else `[loss, ...metrics]` as Scalars; nothing is read back;
   * - `evaluate(data, { batchSize = 128 })` with a data source: `{ loss, acc, ... }` as numbers
   *   (one read-back at the end).
   */
  evaluate(data: DataSource, options?: InferenceOptions): Promise<Record<string, number>>;
  evaluate(x: TensorLike, y: TensorLike, options?: InferenceOptions): tf.Scalar | tf.Scalar[];
  evaluate(a: DataSource | TensorLike, b?: TensorLike | InferenceOptions, c?: InferenceOptions): Promise<Record<string, number>> | tf.Scalar | tf.Scalar[] {
    this.assertUsable('evaluate()');
    if (isDataSource(a)) return this.evaluateData(a, b as InferenceOptions | undefined);
    if (!this.stepParts) throw new TapfitError(ErrorCodes.CONFIG, 'evaluate(x, y): call `await trainer.setup()` (or fit) first; evaluate(x, y) is synchronous like model.evaluate.');
    const { batchSize } = inferenceOptions('evaluate', c);
    const xs = toTensor(a, 'evaluate: x');
    let ys: tf.Tensor;
    try {
      ys = labelsTensor(b as TensorLike, 'evaluate: y'); // a label list is read as fit reads it
    } catch (err) {
      if (xs !== a) xs.dispose();
      throw err;
    }
    const means = new BatchMeans();
    try {
      checkSampleAxes(xs, ys, 'evaluate');
      const n = xs.shape[0];
      const labels = tensorLabelSource(ys); // the labels are checked once, not per batch
      this.evaluationSync({ kind: 'evaluate' }, () => {
        for (let start = 0; start < n; start += batchSize) {
          const size = Math.min(batchSize, n - start);
          const values = tf.tidy(() => {
            const yb = n <= batchSize ? ys : tf.slice(ys, start, size);
            markLabelSource(yb, labels);
            return this.lossAndMetrics(n <= batchSize ? xs : tf.slice(xs, start, size), yb);
          });
          means.add(values, size);
          values.dispose();
        }
      });
      const scalars = means.meanScalars();
      if (!scalars) throw new TapfitError(ErrorCodes.CONFIG, 'evaluate: x has no samples.');
      return scalars.length === 1 ? scalars[0] : scalars;
    } finally {
      means.dispose();
      if (xs !== a) xs.dispose();
      if (ys !== b) ys.dispose();
    }
  }

  /** [loss, ...metrics] of one batch in inference mode. */
  private lossAndMetrics(x: tf.Tensor, y: tf.Tensor): tf.Tensor1D {
    y = asModelTargets(y, this.modelRef.outputShape); // inside the callers' tidy
    x = asModelInputs(x, this.modelRef.inputShape);
    const pred = forwardSegments(this.modelRef, x, { training: false, recomputing: false, step: this.stepCount });
    return tf.stack([this.resolve(Tokens.Loss)(y, pred), ...this.resolve(Tokens.Metrics).map((m) => m.fn(y, pred))]) as tf.Tensor1D;
  }

  /** Mean loss and metrics over `data` (inference mode), between the evaluateStart and evaluateEnd taps. One read-back at the end. */
  private async evaluateData(data: DataSource, options: { batchSize?: number } = {}, info: EvaluateInfo = { kind: 'evaluate' }, ownBatches = false): Promise<Record<string, number>> {
    const { batchSize } = parseOptions('evaluate', dataEvaluateOptionsSchema, options);
    await this.setup();
    this.checkDataShape(data);
    return this.evaluation(info, () => this.meanOverData(data, batchSize, ownBatches));
  }

  private async meanOverData(data: DataSource, batchSize: number, ownBatches: boolean): Promise<Record<string, number>> {
    const metrics = this.resolve(Tokens.Metrics);
    const it = data.batches({ batchSize, shuffle: false, seed: 0, epoch: 0, ownBatches });
    const means = new BatchMeans();
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) {
        const { x, y } = r.value;
        const size = x.shape[0];
        let values: tf.Tensor1D;
        try {
          values = tf.tidy(() => this.lossAndMetrics(x, y));
        } finally {
          tf.dispose([x, y]); // a failed step's batch too
        }
        try {
          means.add(values, size);
        } finally {
          values.dispose();
        }
        await releaseDroppedGpuObjects();
      }
      const values = await means.means();
      if (!values) throw new TapfitError(ErrorCodes.CONFIG, 'evaluate: the data produced no batches.');
      return Object.fromEntries(['loss', ...metrics.map((m) => m.name)].map((n, i) => [n, values[i]]));
    } finally {
      means.dispose();
      await it.return?.(); // a failed step: the source frees a half-made batch
    }
  }

  /**
   * Runs a synchronous evaluation between the evaluateStart and evaluateEnd taps (an EMA
   * plugin swaps its weights in, then back). evaluateEnd runs also when a start tap or the
   * evaluation throws, and the first error is the one thrown. With no taps: just `run`.
   */
  private evaluationSync<T>(info: EvaluateInfo, run: () => T): T {
    const { evaluateStart, evaluateEnd } = this.hooks;
    if (!evaluateStart.isUsed && !evaluateEnd.isUsed) return run();
    if (this.swappedEvaluation) {
      throw new TapfitError(ErrorCodes.STATE, 'evaluate(x, y): another evaluation with evaluateStart/evaluateEnd taps is running (an evaluate(data) or fit\'s validation); await it first, so the taps do not swap weights in twice.');
    }
    let failed = true;
    try {
      evaluateStart.call(info);
      const out = run();
      failed = false;
      return out;
    } finally {
      this.evaluationEnd(info, failed);
    }
  }

  /** The asynchronous form (evaluate(data), fit's validation): one at a time, and a save() waits until the taps have swapped back. */
  private async evaluation<T>(info: EvaluateInfo, run: () => Promise<T>): Promise<T> {
    const { evaluateStart, evaluateEnd } = this.hooks;
    if (!evaluateStart.isUsed && !evaluateEnd.isUsed) return run();
    while (this.swappedEvaluation) await this.swappedEvaluation.catch(() => undefined);
    const running = (async () => {
      let failed = true;
      try {
        evaluateStart.call(info);
        const out = await run();
        failed = false;
        return out;
      } finally {
        this.evaluationEnd(info, failed);
      }
    })();
    this.swappedEvaluation = running;
    try {
      return await running;
    } finally {
      if (this.swappedEvaluation === running) this.swappedEvaluation = undefined;
    }
  }

  /** The evaluateEnd taps; their error is thrown unless an earlier one is already on its way (then it is logged). */
  private evaluationEnd(info: EvaluateInfo, failed: boolean): void {
    try {
      this.hooks.evaluateEnd.call(info);
    } catch (err) {
      if (!failed) throw err;
      this.logger.warn(`evaluateEnd failed too, after the evaluation had failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** A batch's x is [batch, ...the model's input shape]; a source that yields batches of batches (a batched tf.data.Dataset) is named. */
  private checkBatchShape(x: tf.Tensor, who = 'data/model shape mismatch: a batch of x'): void {
    const want = this.modelRef.inputShape;
    if (!want || (x.rank === 1 && takesOneValue(want))) return;
    const matches = (dims: readonly number[]) => dims.length === want.length && want.every((d, i) => d === null || d === dims[i]);
    if (x.rank === want.length + 1 && matches(x.shape.slice(1))) return;
    let hint: string;
    if (matches(x.shape)) {
      // One sample's shape: the batch axis was left out (tfjs would read its first axis as samples).
      hint = ` It looks like one sample without its batch axis: add the axis, x.expandDims(0) (and y's likewise), for a batch of one.`;
    } else if (x.rank === want.length + 2) {
      hint = ' The source yields batches of batches: for a dataset batched for model.fitDataset use datasetData(ds, { batched: true }), or pass datasetData the dataset before its .batch() call (tf.data has no unbatch).';
    } else {
      hint = " Reshape the data or fix the model's inputShape.";
    }
    throw new TapfitError(ErrorCodes.SHAPE, `${who} has shape [${x.shape}], but the model takes [batch, ${want.map((d) => d ?? '?')}].${hint}`);
  }


  private checkDataShape(data: DataSource): void {
    checkDataLabels(data, this.resolve(Tokens.Loss), this.modelRef.outputShape);
    const want = this.modelRef.inputShape;
    const got = data.xShape;
    if (!want || !got) return;
    const ok = (want.length === got.length && want.every((d, i) => d === null || d === got[i])) || (got.length === 0 && takesOneValue(want)); // one value per sample: as model.fit
    if (!ok) {
      throw new TapfitError(
        ErrorCodes.SHAPE,
        `data/model shape mismatch: the model expects samples of shape [${want.map((d) => d ?? '?')}] but the data has [${got}]. Reshape the data or fix the model's inputShape.`,
      );
    }
  }

  /** The resolved order of every hook, the update chain and the memory plan; printed unless `print: false`. */
  describe(options: { print?: boolean | undefined } = {}): TrainerDescription {
    const hooks = {} as Record<HookName, string[]>;
    for (const [k, h] of Object.entries(this.hooks)) hooks[k as HookName] = h.order();
    const adapter = activeWebgpuAdapter();
    const d: TrainerDescription = {
      backend: tf.getBackend() ?? 'none',
      ...(adapter ? { adapter } : {}),
      backendDetail: describeActiveBackend(),
      plugins: this.plugins.map((p) => p.name),
      hooks,
      stepTransforms: this.stepper ? [...this.stepper.names] : [],
      ...describeUpdate(this.stepper),
      optimizer: this.stepper instanceof OptimizerStepper ? this.stepper.optimizer.getClassName() : 'chain',
      backprop: describeBackprop(this.resolve(Tokens.Backprop), this.plugins, this.plan),
      memoryPlan: this.plan,
      trainableParams: Object.values(this.params).reduce((a, v) => a + v.size, 0),
      ...declaredExtras(this.modelRef.layersModel, this.settings.constraints === 'apply'),
    };
    if (options.print !== false) this.logger.info(describeTrainer(d));
    return d;
  }

  /**
   * Writes a checkpoint under `dir` (atomically: a crash never leaves a half-written one
   * in use): model weights, optimizer state, data position, seed and every plugin's
   * state. Returns the checkpoint folder. The first save into a folder claims it for this
   * trainer until dispose(): one run per checkpoint folder, so a save there by another
   * live trainer (or process) is refused.
   */
  async save(dir: string): Promise<string> {
    this.assertUsable('save()');
    // A fit running meanwhile (a save started in a callback, not awaited) waits for the capture before its next step.
    const capture = this.capture();
    this.capturing = capture;
    this.readingSaves++;
    try {
      let read: Awaited<typeof capture>;
      try {
        read = await capture;
      } finally {
        this.readingSaves--;
      }
      const { manifest, tensors } = read;
      return await this.resolve(Tokens.Checkpointer).save(dir, manifest.step, { manifest, tensors });
    } finally {
      if (this.capturing === capture) this.capturing = undefined;
    }
  }

  /** Everything a checkpoint holds, read from one step's state. */
  private async capture(): Promise<{ manifest: Manifest; tensors: Buffer }> {
    await this.setup();
    // Not the weights a plugin swapped in for an evaluation (an EMA's): those taps swap back first.
    while (this.swappedEvaluation) await this.swappedEvaluation.catch(() => undefined);
    return captureCheckpoint({ ...this.parts(), position: await this.positionNow() });
  }

  /**
   * A trainer built from `options` (same model architecture, optimizer and plugins as
   * when saved) with the newest checkpoint under `dir` loaded. fit() then continues
   * where the saved run stopped; the result equals training straight through. If it
   * fails, the model, the optimizer and the plugins passed in `options` are as they were.
   */
  static async resume(dir: string, options: TrainerOptions): Promise<Trainer> {
    const trainer = new Trainer(options);
    try {
      const { manifest: raw, tensors, dir: where } = await trainer.resolve(Tokens.Checkpointer).load(dir);
      const manifest = checkManifest(raw, `cannot resume from '${where}'`);
      const reader = new TensorReader(manifest.tensors, tensors, `cannot resume from '${where}'`, tensorLabels(manifest));
      // The run continues with the seed it was saved with (its shuffling order), whatever `options.seed` says.
      if (options.seed !== undefined && options.seed !== manifest.seed) {
        trainer.logger.warn(`resuming with the checkpoint's seed ${manifest.seed}, not options.seed ${options.seed}: a resumed run keeps its data order.`);
      }
      trainer.settings = { ...trainer.settings, seed: manifest.seed };
      if (manifest.formatVersion < 2) {
        trainer.logger.warn(`resuming from '${where}', a format ${manifest.formatVersion} checkpoint without checksums: its tensors cannot be verified. Save it again to get a verified one.`);
      }
      await trainer.setup();
      await restoreCheckpoint(manifest, reader, trainer.parts(), `cannot resume from '${where}'`);
      // After the restore: a missing plugin whose state is in the checkpoint (its own, or a chain member it supplied) was refused.
      const inChain = manifest.optimizer.kind === 'chain' ? Object.values(manifest.optimizer.suppliedBy ?? {}).flat() : [];
      const missing = manifest.plugins.filter((n) => !trainer.plugins.some((p) => p.name === n) && !(n in manifest.pluginState) && !inChain.includes(n));
      if (missing.length) trainer.logger.warn(`resuming without plugin(s) ${missing.join(', ')} that were registered when saving (they saved no state).`);
      trainer.stepCount = manifest.step;
      trainer.skippedSteps = manifest.skipped;
      trainer.batchCalls = manifest.trainOnBatchCalls ?? 0;
      trainer.pos = { ...manifest.position };
      trainer.resumedSchedule = true;
      return trainer;
    } catch (err) {
      // What setup made is this trainer's own (the chain's fresh state, models plugins swapped in, such as
      // LoRA's adapted copy); the caller's model, optimizer and plugins are left as they were, the plugins free.
      // The trainer is never returned, so its plugins get their dispose() here (dataParallel's workers stop).
      const failure = trainer.disposePlugins();
      trainer.disposeOwn();
      releasePlugins(trainer.plugins, trainer);
      if (failure) trainer.logger.warn(`resume failed, and then ${failure.message}`);
      throw err;
    }
  }

  private parts(): TrainerParts {
    return {
      step: this.stepCount,
      skipped: this.skippedSteps,
      trainOnBatchCalls: this.batchCalls,
      position: this.pos,
      seed: this.settings.seed,
      plugins: this.plugins,
      variables: modelVariables(this.modelRef),
      stepper: this.stepper!,
    };
  }

  /**
   * Frees the update chain's state, what plugins hold (`plugin.dispose`) and any model a
   * plugin swapped in at setup, and gives up the checkpoint folders its saves claimed.
   * The model and a `tf.train` optimizer passed in the options belong to the caller and
   * are left alone (model.fit may go on using both). A plugin's dispose() that throws, or
   * a checkpoint folder's lock file that cannot be removed (`TAPFIT_E_CHECKPOINT`, naming
   * the file to delete), is thrown once everything is freed: the trainer is disposed then.
   */
  dispose(): void {
    if (this.disposed) return;
    if (this.fitting) {
      throw new TapfitError(ErrorCodes.STATE, 'trainer: dispose() was called while fit() runs. Call stop(), await the fit, then dispose().');
    }
    if (this.capturing) {
      throw new TapfitError(ErrorCodes.STATE, 'trainer: dispose() was called while save() reads the state it would free. Await the save, then dispose().');
    }
    this.disposed = true;
    const failure = this.disposePlugins();
    this.disposeOwn();
    releasePlugins(this.plugins, this);
    // Every folder is given up; lock files left behind (a read-only remount) are reported once all is freed.
    let lockFailure: unknown;
    try {
      releaseCheckpointFoldersOf(this);
    } catch (err) {
      lockFailure = err;
    }
    if (failure && lockFailure) this.logger.warn((lockFailure as Error).message);
    if (failure ?? lockFailure) throw failure ?? lockFailure;
  }

  /** Every plugin gets its dispose(), whatever one of them throws; returns the first failure. */
  private disposePlugins(): TapfitError | undefined {
    let failure: TapfitError | undefined;
    for (const p of this.plugins) {
      try {
        refusePromise(p.dispose?.(), p.name, 'dispose');
      } catch (err) {
        failure ??= err instanceof TapfitError && err.code === ErrorCodes.PLUGIN_INVALID ? err : pluginCallFailure(p.name, 'dispose()', err);
      }
    }
    return failure;
  }

  /** Models plugins swapped in (never the caller's own tfjs-layers model). */
  private disposeModels(models: readonly TrainableModel[]): void {
    for (const m of new Set(models)) {
      if (m.dispose) m.dispose();
      else if (m.layersModel && m.layersModel !== this.userModel) m.layersModel.dispose();
    }
  }

  /** What the trainer made itself: models plugins swapped in at setup, and the chain's state. */
  private disposeOwn(): void {
    this.disposeModels(this.ownedModels.splice(0));
    this.stepper?.dispose();
    this.stepper = undefined;
    this.stepParts = undefined;
    this.ready = undefined;
  }
}

/**
 * Said once, at setup, when a setup tap swapped the model: a ported model.fit program goes on
 * using its own `model` (save, predict, evaluate, a second fit), which this trainer never
 * trains; nothing else would tell it.
 */
function rebuiltModelWarning(plugins: readonly string[], layers: boolean): string {
  const who = plugins.length ? `plugin${plugins.length > 1 ? 's' : ''} ${plugins.map((p) => `'${p}'`).join(', ')}` : 'a setup tap';
  if (!layers) {
    return `${who} replaced the model at setup: this trainer runs \`trainer.model\`, not the model you passed in, which does not run what it trains. Predict and evaluate with trainer.predict / trainer.evaluate.`;
  }
  return (
    `${who} rebuilt the model at setup: this trainer trains its own copy, \`trainer.layersModel\`, and the model you passed in stays as it was (untrained). ` +
    'Save, predict and evaluate with `trainer.layersModel` (or trainer.predict / trainer.evaluate), and give that one to a later Trainer.'
  );
}

/** A chain's members, so plugins see (and may replace) each transform by name. */
function chainMembers(t: StepTransform): StepTransform[] {
  const members = (t as { transforms?: StepTransform[] }).transforms;
  return Array.isArray(members) ? members.flatMap(chainMembers) : [t];
}

/** The weight penalties and constraints a tfjs-layers model declares, for describe(). */
function declaredExtras(model: tf.LayersModel | undefined, applied: boolean): Pick<TrainerDescription, 'penalties' | 'constraints'> {
  if (!model) return { penalties: [], constraints: { weights: [], applied } };
  const penalties = penalizedLayers(model).map((l) => l.name);
  const weights = model.trainableWeights.filter((w) => w.constraint).map((w) => `${w.name} (${w.constraint.getClassName()})`);
  return { penalties, constraints: { weights, applied } };
}

/** What a `stepTransforms` tap returns: transforms with unique names (they key the chain's state). */
function checkChainMembers(members: StepTransform[], plugin: string): void {
  const names = Array.isArray(members) ? members.map((t) => t?.name) : [];
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (!Array.isArray(members) || members.some((t) => typeof t?.update !== 'function' || typeof t?.name !== 'string')) {
    throw new TapfitError(ErrorCodes.PLUGIN_FAILED, `plugin '${plugin}' returned from hook 'stepTransforms' something that is not a list of step transforms. Return the members it was given, with some replaced.`);
  }
  if (duplicate !== undefined) {
    throw new TapfitError(ErrorCodes.PLUGIN_FAILED, `plugin '${plugin}' returned chain members with the name '${duplicate}' twice from hook 'stepTransforms' (names key the chain's state). Give the new member its own name, or replace the old one instead of adding.`);
  }
}

/** The epoch being run: how it is batched and its sums so far, for a position taken inside it. */
interface EpochRun {
  batchSize: number;
  shuffle: boolean;
  names: readonly string[];
  means: BatchMeans;
  dataSize: number | undefined;
  /** Under batchesPerEpoch: the batches of the data trained on since it was opened (the stopped fit's included). */
  carriedRead?: () => number;
}

/** What a stopped epoch's position records of its data: the sample count, and where a batchesPerEpoch fit had read it to. */
function dataOf(run: EpochRun): { dataSize?: number; carriedRead?: number } {
  return { ...(run.dataSize === undefined ? {} : { dataSize: run.dataSize }), ...(run.carriedRead ? { carriedRead: run.carriedRead() } : {}) };
}
