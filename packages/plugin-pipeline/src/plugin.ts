import * as tf from '@tensorflow/tfjs';
import {
  ErrorCodes,
  sameVariable,
  Stage,
  TapfitError,
  Tokens,
  trainableVariables,
  type Logger,
  type NamedTensors,
  type PluginConflict,
  type PluginState,
  type Schedule,
  type StepTransform,
  type TapfitPlugin,
  type TrainableModel,
  type TrainerView,
} from '@tapfit/core';
import { describeStages, type StageRow } from './describe';
import { resolvePipelineOptions, type PipelineOptions, type ResolvedPipelineOptions } from './options';
import { checkSplittable, partitionAt, partitionBalanced, type StageSpec } from './partition';
import { measureSegmentTimes } from './segment-costs';
import { bindStages, PipelineSimulator } from './simulator';
import { spikeCompensation } from './spike-compensation';
import { runSegments } from './stage-math';
import type { MotionSource } from './weight-history';

export const PIPELINE_PLUGIN = 'pipeline';

/**
 * What the pipeline cannot compose with (docs/composition.md): it replaces the Backprop
 * with a stage simulator that keeps each stage's input and re-runs stages at weights other
 * than their forward's, so it cannot realise memory plans; and it is itself the delay.
 */
function pipelineConflicts(o: ResolvedPipelineOptions): PluginConflict[] {
  const plan =
    "the pipeline's Backprop (its stage simulator) stashes each stage's input and recomputes stages at other weights than their forward, so it cannot realise a memory plan";
  return [
    { plugin: 'revsilo', reason: `${plan}: revsilo's 'invert' segments would keep all their activations (rebuilding an input needs the forward's weights). Train a reversible network without the pipeline` },
    { plugin: 'memory-budget', reason: `${plan}: the budget's 'recompute' choices would be ignored. Leave memoryBudget out when pipelining` },
    {
      plugin: 'delayed-gradients',
      reason: "the pipeline already delays each stage's gradients (D_s); a second delay queue stacks on top and its compensation would see the wrong delay. Use the pipeline's 'extraDelay' option instead",
    },
    ...(o.compensation === 'sc'
      ? [{ plugin: 'adaptive-braking', reason: "both replace the update chain's momentum member with a delay compensation (Spike Compensation, Adaptive Braking); choose one: compensation 'none' with Adaptive Braking, or drop Adaptive Braking" }]
      : []),
  ];
}

/** The plugin plus its handle: the stages and the simulator once set up. */
export interface PipelinePlugin extends TapfitPlugin {
  readonly options: ResolvedPipelineOptions;
  /** The stages (after setup). */
  readonly stages: readonly StageSpec[];
  /** The stage table: segments, D_s, parameters, held weight versions and stashed activations. */
  describe(): string;
  rows(): StageRow[];
  dispose(): void;
}

/**
 * Pipelined Backpropagation (docs/techniques.md §5) as a tapfit plugin: splits the model
 * into stages at setup, replaces the Backprop with the one-process simulator
 * (`PipelineSimulator`), gives every stage its own Spike Compensation delay in the update
 * chain ('momentum' member), records each stage's forward weights (or their Linear
 * Weight Prediction), reports the held versions and stashed activations to
 * `planMemory`, and checkpoints its history.
 */
export function pipeline(options: PipelineOptions): PipelinePlugin {
  const o = resolvePipelineOptions(options);
  let stages: StageSpec[] = [];
  let simulator: PipelineSimulator | undefined;
  let trainer: TrainerView | undefined;
  let logger: Logger | undefined;
  /** Bytes of one sample's input to each stage, from a probe forward (when the input shape is known). */
  let inputBytesPerSample: number[] | undefined;
  /** The learning rate and the chain members the velocity form reads (set in stepTransforms). */
  let lrSource: { member: string; lr: number | Schedule } | undefined;
  let momentumMember = 'momentum';
  /** The model setup partitioned: a resume may rebind it to the checkpoint's split. */
  let setupModel: TrainableModel | undefined;
  /** D_s of each trainable variable's stage, read by Spike Compensation at every update. */
  const delayOf = new Map<string, number>();

  /** Binds `specs` to the model's variables as the running simulator (or a candidate for a resume's check). */
  const simulate = (model: TrainableModel, specs: readonly StageSpec[]): PipelineSimulator =>
    new PipelineSimulator(bindStages(specs, model.segments, new Set(trainableVariables(model))), { prediction: o.prediction, weightStashing: o.weightStashing, motion });

  const use = (model: TrainableModel, specs: StageSpec[], sim: PipelineSimulator): void => {
    stages = specs;
    simulator = sim;
    delayOf.clear();
    for (const st of sim.stages) for (const v of st.variables) delayOf.set(v.name, st.delay);
    inputBytesPerSample = probeStageInputs(model, specs, inputShapeOf(model, o.inputShape));
  };

  /**
   * The checkpoint's split when it differs from this setup's (undefined when it is the same, or
   * the checkpoint predates saving it). A balanced split (`stages: S`) is measured anew at every
   * setup, so a resume takes the saved one when it has the same S; another S, or explicit
   * `boundaries` that differ, are refused, naming the stages or boundaries to pass. Splits are
   * compared by their stage sizes (segments per stage), and the saved segment names with this
   * model's by position under core's `sameVariable` rule: tfjs numbers unnamed layers per
   * process ('dense_Dense7' saved, 'dense_Dense10' now), and the boundaries to pass are named
   * as this model names them.
   */
  const savedSplit = (state: PluginState): StageSpec[] | undefined => {
    const saved = (state.json as SavedHistory | undefined)?.stages;
    if (!setupModel || !Array.isArray(saved) || !saved.every((st) => Array.isArray(st.segments))) return undefined;
    const split = saved.map((st) => st.segments!);
    const quoted = (b: readonly string[]) => `[${b.map((n) => `'${n}'`).join(', ')}]`;
    const names = setupModel.segments.map((seg) => seg.name);
    const savedNames = split.flat();
    if (savedNames.length !== names.length || savedNames.some((n, i) => !sameVariable(n, names[i]))) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `${PIPELINE_PLUGIN}: the checkpoint's stages name the segments ${quoted(savedNames)}, this model has ${quoted(names)}; resume with the model the run was saved with.`);
    }
    const sizes = split.map((st) => st.length);
    if (sizes.join() === stages.map((st) => st.segments.length).join()) return undefined;
    // Each later stage's first segment, by this model's name.
    const boundaries = sizes.slice(0, -1).map((_, i) => names[sizes.slice(0, i + 1).reduce((a, b) => a + b, 0)]);
    if (o.boundaries) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `${PIPELINE_PLUGIN}: the checkpoint was saved with stages split at boundaries ${quoted(boundaries)}, this pipeline has boundaries ${quoted(o.boundaries)}; resume with boundaries: ${quoted(boundaries)}.`,
      );
    }
    // Only a re-measured balance of the same S is the saved run's split; another S is the user's choice, which the saved delays and weight versions do not fit.
    if (split.length !== o.stages) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `${PIPELINE_PLUGIN}: the checkpoint was saved with ${split.length} stages (split at boundaries ${quoted(boundaries)}), this pipeline asks for stages: ${o.stages}. ` +
          `A run keeps its stage count (the saved delays and weight versions are per stage): resume with stages: ${split.length} (or boundaries: ${quoted(boundaries)}).`,
      );
    }
    return partitionAt(names, boundaries, o.extraDelay);
  };

  const motion: MotionSource = {
    velocity(v) {
      const state = trainer?.optimizerState?.[momentumMember] as { velocity?: NamedTensors } | undefined;
      return state?.velocity?.[v.name];
    },
    stepAhead(delay) {
      if (!lrSource) return 0;
      const { lr, member } = lrSource;
      if (typeof lr === 'number') return delay * lr;
      const count = (trainer?.optimizerState?.[member] as { count?: number } | undefined)?.count ?? 0;
      let sum = 0;
      for (let j = 0; j < delay; j++) sum += lr(count + j);
      return sum;
    },
  };

  const partition = (model: TrainableModel): StageSpec[] => {
    const names = model.segments.map((s) => s.name);
    checkSplittable(o.boundaries ? o.boundaries.length + 1 : o.stages!, names.length, model.unsplitReason);
    if (o.boundaries) {
      if (o.boundaries.length + 1 > names.length) {
        throw new TapfitError(ErrorCodes.CONFIG, `pipeline: ${o.boundaries.length + 1} stages asked for, but the model has only ${names.length} segments; give fewer boundaries.`);
      }
      return partitionAt(names, o.boundaries, o.extraDelay);
    }
    const shape = inputShapeOf(model, o.inputShape);
    if (!shape) {
      throw new TapfitError(ErrorCodes.CONFIG, `pipeline: balancing ${o.stages} stages needs the model's input shape; pass 'inputShape' (without the batch axis) or explicit 'boundaries'.`);
    }
    if (o.stages! > names.length) return partitionBalanced(names, names.map(() => 1), o.stages!, o.extraDelay); // throws, naming the counts
    const probe = tf.zeros([o.microBatch, ...shape]);
    try {
      return partitionBalanced(names, measureSegmentTimes(model.segments, probe), o.stages!, o.extraDelay);
    } finally {
      probe.dispose();
    }
  };

  /** The bytes a stage's weight versions take once its history is full (D_s + 1, plus w_prev for 'lwp-delta'): what setup plans. */
  const plannedVersionBytes = (s: { delay: number; variables: readonly tf.Variable[] }): number =>
    s.delay > 0 ? (s.delay + 1 + (o.prediction === 'lwp-delta' ? 1 : 0)) * s.variables.reduce((n, v) => n + v.size * 4, 0) : 0;

  const rows = (): StageRow[] =>
    (simulator?.stages ?? []).map((s, i) => ({
      stage: s.index,
      segments: s.segments,
      delay: s.delay,
      params: s.variables.reduce((n, v) => n + v.size, 0),
      versionBytes: simulator!.versionBytes(i) || plannedVersionBytes(s),
      stashBytes: simulator!.stashBytes[i] || (inputBytesPerSample ? inputBytesPerSample[i] * o.microBatch : undefined),
      inFlight: s.delay + 1,
    }));

  /**
   * What planMemory is told, before any step. One entry per stage with a delay (D_s follows
   * the stage count alone) and one per stage input when the input shape is known, so a split
   * of the same model into as many stages gives the same entries: a resume that takes the
   * checkpoint's split (savedSplit: same model, same S) refreshes their bytes in place.
   */
  const plannedMemory = (): { source: string; bytes: number }[] =>
    (simulator?.stages ?? []).flatMap((s, i) => [
      ...(s.delay > 0 ? [{ source: `${PIPELINE_PLUGIN}: stage ${s.index} weight versions (D_s = ${s.delay})`, bytes: plannedVersionBytes(s) }] : []),
      // Measured before any step, for `microBatch` samples: a trainer step stashes its whole batch.
      ...(inputBytesPerSample
        ? [{ source: `${PIPELINE_PLUGIN}: stage ${s.index} stashed input per ${o.microBatch === 1 ? 'sample' : `${o.microBatch} samples`} (a step stashes its batch)`, bytes: inputBytesPerSample[i] * o.microBatch }]
        : []),
    ]);
  /** The entries this plugin gave planMemory (the trainer's plan holds them). */
  let reported: { source: string; bytes: number }[] = [];

  const plugin: PipelinePlugin = {
    name: PIPELINE_PLUGIN,
    core: '^0.1.0',
    provides: [Tokens.Backprop],
    conflicts: pipelineConflicts(o),
    options: o,
    get stages() {
      return stages;
    },
    apply(api) {
      // Core gives an instance to one live trainer at a time (a second is refused, naming
      // 'pipeline'); once that trainer is disposed, failed to build or failed to resume, the
      // instance serves a new one, starting from nothing, as a fresh instance does.
      simulator?.dispose();
      simulator = undefined;
      stages = [];
      inputBytesPerSample = undefined;
      reported = [];
      lrSource = undefined;
      momentumMember = 'momentum';
      trainer = api.trainer;
      logger = api.logger;
      api.services.register(Tokens.Backprop, {
        description: 'stage simulator: stashes stage inputs, re-runs stages in the backward',
        realisesMemoryPlan: false,
        compute: (request) => {
          if (!simulator) throw new TapfitError(ErrorCodes.STATE, `${PIPELINE_PLUGIN}: the pipeline is not set up; call trainer.setup() (fit does) first.`);
          return simulator.compute(request);
        },
      });
      // LAST: partition the model other setup taps (OnlineNorm, LoRA) have settled on.
      api.hooks.setup.tap({ stage: Stage.LAST }, ({ model }) => {
        const specs = partition(model);
        simulator?.dispose();
        setupModel = model;
        use(model, specs, simulate(model, specs));
        if (o.verbose) logger?.info(plugin.describe());
      });
      api.hooks.planMemory.tap({ stage: Stage.LAST }, (plan) => {
        reported = plannedMemory();
        return { ...plan, extraBytes: [...plan.extraBytes, ...reported] };
      });
      api.hooks.stepTransforms.tap({ stage: Stage.TRANSFORM }, (members) => {
        const m = members.find((t) => t.name === momentumMember) ?? members.find((t) => typeof t.hyperparams?.momentum === 'number');
        if (m) momentumMember = m.name;
        if (o.prediction === 'lwp-velocity') {
          const lrMember = members.find((t) => t.hyperparams?.lr !== undefined);
          if (!m || !lrMember) {
            throw new TapfitError(ErrorCodes.CONFIG, `${PIPELINE_PLUGIN}: prediction 'lwp-velocity' needs an update chain with momentum and a learning rate (e.g. sgd({ lr, momentum })); the chain is ${members.map((t) => t.name).join(' -> ')}. Use prediction 'lwp-delta' instead.`);
          }
          lrSource = { member: lrMember.name, lr: lrMember.hyperparams!.lr as number | Schedule };
        }
        if (o.compensation !== 'sc') return members;
        if (!m) {
          throw new TapfitError(ErrorCodes.CONFIG, `${PIPELINE_PLUGIN}: compensation 'sc' replaces the optimizer chain's momentum member, but the optimizer chain (members: ${members.map((t) => t.name).join(' -> ')}) has no momentum member: use sgd({ lr, momentum }) with momentum > 0, or compensation 'none'.`);
        }
        const hp = m.hyperparams!;
        if (typeof hp.compensation === 'string') {
          throw new TapfitError(ErrorCodes.CONFIG, `${PIPELINE_PLUGIN}: compensation 'sc' replaces the chain's '${m.name}' member, which is already a delay compensation ('${hp.compensation}'); use one of them (compensation 'none' keeps it).`);
        }
        if (hp.nesterov === true || (typeof hp.dampening === 'number' && hp.dampening !== 0)) {
          throw new TapfitError(ErrorCodes.CONFIG, `${PIPELINE_PLUGIN}: compensation 'sc' works on plain momentum (docs/techniques.md §5.3); the chain's '${m.name}' has nesterov ${hp.nesterov} and dampening ${hp.dampening}. Use momentum without them.`);
        }
        const sc: StepTransform = spikeCompensation({ momentum: hp.momentum as number, delay: (name) => delayOf.get(name) ?? 0, name: m.name });
        return members.map((t) => (t === m ? sc : t));
      });
    },
    saveState: () => saveHistory(simulator, settingsOf(o)),
    checkState(state: PluginState) {
      const split = savedSplit(state);
      if (!split) return void readHistory(simulator, state, settingsOf(o));
      const candidate = simulate(setupModel!, split);
      try {
        readHistory(candidate, state, settingsOf(o));
      } finally {
        candidate.dispose();
      }
    },
    loadState(state: PluginState) {
      let candidate: PipelineSimulator | undefined;
      try {
        const split = savedSplit(state);
        candidate = split && simulate(setupModel!, split);
        loadHistory(candidate ?? simulator, state, settingsOf(o));
        if (split && candidate) {
          const measured = stages.map((st) => st.segments.join(' '));
          simulator?.dispose();
          use(setupModel!, split, candidate);
          // The plan was made at setup, for the measured split: its figures follow the split the run goes on with.
          const planned = plannedMemory();
          reported.forEach((entry, i) => Object.assign(entry, planned[i]));
          logger?.info(`${PIPELINE_PLUGIN}: resuming with the checkpoint's stages [${split.map((st) => st.segments.join(' ')).join(' | ')}], not this setup's measured [${measured.join(' | ')}]`);
          if (o.verbose) logger?.info(plugin.describe());
        }
      } catch (err) {
        candidate?.dispose();
        tf.dispose(Object.values(state.tensors ?? {}));
        throw err;
      }
    },
    describe: () => describeStages(rows(), o),
    rows,
    dispose() {
      simulator?.dispose();
    },
  };
  return plugin;
}

function inputShapeOf(model: TrainableModel, given?: number[]): number[] | undefined {
  if (given) return given;
  const s = model.inputShape;
  return s && s.every((d): d is number => typeof d === 'number' && d > 0) ? [...s] : undefined;
}

/** Bytes per sample of each stage's input, from one inference forward on zeros. */
function probeStageInputs(model: TrainableModel, stages: readonly StageSpec[], shape?: number[]): number[] | undefined {
  if (!shape) return undefined;
  return tf.tidy(() => {
    const ctx = { training: false, recomputing: false, step: 0 };
    let xs: tf.Tensor[] = [tf.zeros([1, ...shape])];
    return stages.map((s) => {
      const bytes = xs.reduce((n, t) => n + t.size * 4, 0);
      xs = runSegments(model.segments.slice(s.start, s.end), xs, ctx);
      return bytes;
    });
  });
}

// Checkpoint layout: json { tick, stages: [{ index, delay, entries, previous, segments }] }, tensors
// 's<stage>:<version>:<variable index>' and 's<stage>:prev:<variable index>' (indices, not
// names: tfjs numbers variables per process).

interface SavedHistory {
  tick: number;
  /** `segments`: the stage's segment names (absent in checkpoints before 2026-12-01). */
  stages: { index: number; delay: number; entries: number[]; previous: boolean; segments?: string[] }[];
  /** What the held versions mean (raw weights or predictions) and how they are used; absent in checkpoints before 2026-11-30. */
  settings?: HistorySettings;
}

type HistorySettings = Pick<ResolvedPipelineOptions, 'compensation' | 'prediction' | 'weightStashing'>;

const settingsOf = (o: ResolvedPipelineOptions): HistorySettings => ({ compensation: o.compensation, prediction: o.prediction, weightStashing: o.weightStashing });

function saveHistory(sim: PipelineSimulator | undefined, settings: HistorySettings): PluginState {
  if (!sim) return { json: { tick: 0, stages: [], settings } };
  const tensors: Record<string, tf.Tensor> = {};
  const json: SavedHistory = { tick: sim.tick, stages: [], settings };
  sim.stages.forEach((s, i) => {
    const snap = sim.history(i)?.snapshot();
    json.stages.push({ index: s.index, delay: s.delay, entries: snap?.entries.map(([k]) => k) ?? [], previous: !!snap?.previous, segments: [...s.segments] });
    snap?.entries.forEach(([k, ts]) => ts.forEach((t, j) => (tensors[`s${s.index}:${k}:${j}`] = t)));
    snap?.previous?.forEach((t, j) => (tensors[`s${s.index}:prev:${j}`] = t));
  });
  return { json, tensors };
}

/** The checkpoint's weight versions, checked against this pipeline (nothing applied); throws naming the mismatch. */
function readHistory(sim: PipelineSimulator | undefined, state: PluginState, settings: HistorySettings): { tick: number; restored: { entries: [number, tf.Tensor[]][]; previous?: tf.Tensor[] }[] } {
  if (!sim) throw new TapfitError(ErrorCodes.CHECKPOINT, `${PIPELINE_PLUGIN}: state arrived before setup; resume through Trainer.resume.`);
  const json = state.json as SavedHistory;
  const tensors = state.tensors ?? {};
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${PIPELINE_PLUGIN}: the checkpoint's pipeline state does not fit this pipeline: ${why}. Resume with the same stages, delays and prediction options.`);
  };
  if (!json || !Number.isInteger(json.tick) || !Array.isArray(json.stages)) fail('it has no tick or stage list');
  const saved = json.settings;
  if (saved) {
    const differ = (Object.keys(settings) as (keyof HistorySettings)[]).filter((k) => saved[k] !== settings[k]);
    if (differ.length) fail(`it was saved with ${differ.map((k) => `${k} ${JSON.stringify(saved[k])}`).join(', ')}, this pipeline has ${differ.map((k) => `${k} ${JSON.stringify(settings[k])}`).join(', ')}`);
  }
  if (json.stages.length !== sim.stages.length) fail(`it has ${json.stages.length} stages, this pipeline ${sim.stages.length}`);
  const restored = sim.stages.map((s, i) => {
    const stage = json.stages[i];
    if (stage.index !== s.index || stage.delay !== s.delay) fail(`stage ${s.index} has delay ${s.delay}, the checkpoint's stage ${stage.index} delay ${stage.delay}`);
    const take = (key: string, j: number) => {
      const t = tensors[key];
      const v = s.variables[j];
      if (!t) fail(`tensor '${key}' is missing`);
      if (t.shape.join(',') !== v.shape.join(',')) fail(`'${key}' is [${t.shape}] but stage ${s.index}'s variable ${j} ('${v.name}') is [${v.shape}]`);
      return t;
    };
    const entries: [number, tf.Tensor[]][] = stage.entries.map((k) => [k, s.variables.map((_, j) => take(`s${s.index}:${k}:${j}`, j))]);
    const previous = stage.previous ? s.variables.map((_, j) => take(`s${s.index}:prev:${j}`, j)) : undefined;
    return { entries, previous };
  });
  const used = restored.reduce((n, r) => n + r.entries.length * (r.entries[0]?.[1].length ?? 0) + (r.previous?.length ?? 0), 0);
  if (used !== Object.keys(tensors).length) fail(`it holds ${Object.keys(tensors).length} tensors where its stage list names ${used}`);
  return { tick: json.tick, restored };
}

function loadHistory(sim: PipelineSimulator | undefined, state: PluginState, settings: HistorySettings): void {
  const { tick, restored } = readHistory(sim, state, settings);
  // Everything checked: apply.
  Object.values(state.tensors ?? {}).forEach((t) => tf.keep(t));
  restored.forEach((r, i) => sim!.history(i)?.restore(r));
  sim!.tick = tick;
}
