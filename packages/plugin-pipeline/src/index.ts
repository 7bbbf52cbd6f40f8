/// <reference types="node" preserve="true" />
// @tapfit/plugin-pipeline: Pipelined Backpropagation with Spike Compensation and Linear
// Weight Prediction (docs/techniques.md §5), simulated in one process or run in worker threads.
export { stageDelays } from './delays';
export { partitionAt, partitionBalanced, balancedStarts, type StageSpec } from './partition';
export { measureSegmentTimes, measureSegmentCosts, measureUpdateCosts } from './segment-costs';
export { spikeCompensation, spikeCoefficients, type SpikeCompensationOptions, type SpikeCompensationState } from './spike-compensation';
export { predictByVelocity, predictByDelta, PREDICTIONS, type Prediction } from './weight-prediction';
export { scaleHyperparameters, type ScaleHyperparametersOptions } from './scaling';
export { WeightHistory, type MotionSource } from './weight-history';
export { PipelineSimulator, bindStages, type BoundStage, type SimulatorOptions } from './simulator';
export { withWeights, stageBackward, runSegments, type StageGradients } from './stage-math';
export { pipeline, PIPELINE_PLUGIN, type PipelinePlugin } from './plugin';
export { describeStages, type StageRow } from './describe';
export type { PipelineOptions, PipelineCommonOptions, PipelineSplit, Compensation, ResolvedPipelineOptions } from './options';

import { pipeline } from './plugin';
/** The entry point config files use (`"plugins": [["@tapfit/plugin-pipeline", { "stages": 4 }]]`). */
export const tapfitPlugin = pipeline;
export { ThreadedPipeline, type ThreadedPipelineOptions, type ThreadedPipelineCommonOptions, type ThreadedPipelineSplit } from './threaded/executor';
export { messagePortTransport, type Transport, type StageLink, type StageMessage } from './threaded/transport';
export type { StageStats } from './threaded/protocol';
