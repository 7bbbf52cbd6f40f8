/// <reference types="node" preserve="true" />
import 'reflect-metadata';
import { settleRequireTimeBackend, silenceCpuBanner } from './backend/require-time';
import { installCpuCastCopies } from './backend/cpu-cast-copies';

export * from './errors';
export { parseOptions, suggest } from './options';
export * as optionSchemas from './options';
export * from './version';
export * from './tensors';
export * from './transforms';
export * from './backend';
export * from './io';
export * from './model/segment';
export * from './model/noise-seed';
export { layerNoiseName } from './model/noise-names';
export * from './model/trainable-model';
export { rebuildLayersModelInWorker, type RebuildContext } from './model/rebuild-in-worker';
export { importSetupModule, isSetupModuleSpec, SETUP_MODULE_FORMS } from './model/worker-setup-module';
export * from './memory';
export * from './parallel';
export { Stage, type TapOptions, type OrderedTap } from './hooks/order';
export type { Hooks, HookName, TapOnly, TapOnlyHooks, TapFn } from './hooks/hooks';
// The hook classes are types to their users (who tap, never construct): type-only, no runtime surface.
export type { HookPoint, WaterfallHook, SeriesHook, SyncSeriesHook, RecordedTap } from './hooks/hook-point';
export * from './hooks/types';
export * from './plugin/types';
export { validatePlugin, validatePluginSet, type PluginSpec } from './plugin/registry';
export { assertSinglePackageCopies, loadedCoreCopies, loadedTfjsCopies, type PackageCopy } from './plugin/single-copy';
export * from './services/tokens';
export { ConsoleLogger, SilentLogger, StoreAllPlanner, AutodiffBackprop } from './services/defaults';
export * from './step/forward-pass';
export * from './step/step-request';
export { checkGradients } from './step/check-gradients';
export * from './data/data-source';
export { TensorData, arrayData, tensorData, permutation, type HostArray, type HostTensor, type Numeric } from './data/tensor-data';
export type { LabelSource } from './data/labels';
export type { NestedNumbers, NumericTypedArray } from './data/plain-batch';
export { DatasetData, datasetData, type DatasetDataOptions, type DatasetElement, type ElementPart } from './data/dataset-data';
export { losses, resolveLoss, LOSS_NAMES, type LossFunction, type LossName, type LossSpec } from './train/losses';
export { accuracy, resolveMetrics, METRIC_NAMES, type MetricName, type MetricSpec, type NamedMetric } from './train/metrics';
export { penalizedLayers, weightPenalties } from './train/regularization';
export { layersConstraints } from './train/constraints';
export { isModelTraining, markModelTraining } from './train/training-flag';
export type { FitOptions, InferenceOptions } from './train/options';
export type { FitDatasetOptions } from './train/fit-dataset';
export type { TensorLike } from './train/fit-inputs';
export type { FitParams, CallbackHandlers, CallbackLike, Logs } from './train/callbacks';
export type { History } from './train/history';
export { Trainer, type TrainerOptions } from './train/trainer';
export { ChainStepper, OptimizerStepper, type Stepper } from './train/stepper';
export type { BackpropDescription, TrainerDescription, UpdateMember } from './train/describe';
export { FileCheckpointer, type CheckpointFiles } from './checkpoint/file-checkpointer';
export { CHECKPOINT_DIR_NAME } from './checkpoint/atomic-dir';
export { claimCheckpointFolder } from './checkpoint/checkpoint-claim';
export { WRITER_LOCK, type FolderClaim, type FolderHolder } from './io/folder-claim';
export { syncFolder, writeFileDurably } from './io/durable-files';
export { oneWriterPerFolder } from './io/one-writer-per-folder';
export { CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, type EpochSoFar, type Manifest, type Position } from './checkpoint/manifest';
export type { TensorEntry, TensorRef } from './checkpoint/tensor-file';
export { sameVariable } from './checkpoint/variable-names';

// Layers built at require time need a backend before selectBackend() runs (see require-time.ts).
settleRequireTimeBackend();
silenceCpuBanner();
installCpuCastCopies(); // tensors made on cpu before selectBackend() move to it intact
