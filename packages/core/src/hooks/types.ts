import type * as tf from '@tensorflow/tfjs';
import type { TrainableModel } from '../model/trainable-model';
import type { NamedTensors } from '../tensors';
import type { StepTransform } from '../transforms/types';

/** Where the loop is. `step` counts updates applied before this batch. */
export interface StepInfo {
  readonly epoch: number;
  readonly batch: number;
  readonly step: number;
}

/**
 * Gradients keyed by variable name, or `null` to apply no update this step (e.g. a
 * delay queue still filling). Whatever a `backward` tap returns, the trainer owns and
 * disposes after the update; a tap that keeps tensors across steps must `tf.keep` its
 * own copies.
 */
export type Gradients = NamedTensors | null;

/** What `setup` taps may read and change (model surgery happens here). */
export interface SetupContext {
  readonly model: TrainableModel;
  /**
   * Replace the model (e.g. a copy with adapted layers); later taps see the new one.
   * The trainer owns a replacement: `trainer.dispose()` disposes it (save it first).
   */
  replaceModel(model: TrainableModel | tf.LayersModel): void;
}

/** Facts about the model for `planMemory` and `stepTransforms` taps. */
export interface ModelInfo {
  readonly model: TrainableModel;
  readonly segmentNames: readonly string[];
  /** Trainable parameters, keyed by variable name. */
  readonly params: Readonly<Record<string, tf.Variable>>;
}

export interface FitStartInfo {
  readonly epochs: number;
  readonly stepsPerEpoch: number;
  readonly initialEpoch: number;
}
export interface EpochStartInfo {
  readonly epoch: number;
}
export interface BatchEndInfo extends StepInfo {
  /** Reads the batch loss back from the device (only when called). */
  loss(): number;
  /** True when the update of this batch was skipped (non-finite loss, or `backward` returned null). */
  readonly skipped: boolean;
}
export interface EpochEndInfo {
  readonly epoch: number;
  /** Epoch metrics; taps may add their own. */
  readonly logs: Record<string, number>;
}
/** What `evaluateStart` and `evaluateEnd` taps receive. */
export interface EvaluateInfo {
  /** 'validation': fit's validation at the end of an epoch; 'evaluate': a `trainer.evaluate` call (also a callback's `model.evaluate`). */
  readonly kind: 'validation' | 'evaluate';
  /** The epoch being validated (kind 'validation'). */
  readonly epoch?: number;
}
export interface FitEndInfo {
  /** What fit returns: `{ epoch, history: { loss: [...], ... }, params }`. */
  readonly history: History;
}

export type { StepTransform };

/** What fit tells callbacks about the run (tf.CustomCallback's `params`). */
export interface FitParams {
  epochs: number;
  initialEpoch: number;
  /** Training samples per epoch, when known. */
  samples: number | undefined;
  /** Batches per epoch (null: not fixed, as in tfjs when samples are known). */
  steps: number | null;
  batchSize: number;
  verbose: number;
  doValidation: boolean;
  /** The keys of the epoch logs: loss, metrics, then val_ forms. */
  metrics: string[];
}

/** What fit returns: tf.History's shape (`epoch`, `history`, `params`) with numbers. */
export interface History {
  /** The epochs that ran, in order (0-based; from initialEpoch or the trainer's position). */
  epoch: number[];
  /** Per log key, one value per epoch: 'loss', the metrics ('acc', 'mse', ...) and their 'val_' forms. */
  history: Record<string, number[]>;
  params: FitParams;
}
