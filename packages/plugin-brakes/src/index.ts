// @tapfit/plugin-brakes: Adaptive Braking (docs/techniques.md §4), simulated gradient delay
// and real asynchronous training with worker threads.
export { adaptiveBraking, type AdaptiveBrakingState } from './adaptive-braking';
export { brakingScales, type BrakingScaleOptions } from './braking-scale';
export { DEFAULT_EPS, DEFAULT_RHO, type AdaptiveBrakingOptions } from './options';
export { adaptiveBrakingPlugin, withAdaptiveBraking, BRAKING_PLUGIN, type AdaptiveBrakingPluginOptions } from './adaptive-braking-plugin';
export { GradientDelay } from './gradient-delay';
export { delayedGradients, DELAY_PLUGIN, type DelayedGradientsOptions, type DelayedGradientsPlugin } from './delayed-gradients';
export { brakesPlugin, tapfitPlugin, BRAKES_PLUGIN, type BrakesOptions, type BrakesPlugin } from './combined-plugin';
export { asyncTrain } from './async/async-train';
export { AsyncTrainError, ASYNC_WORKERS_FAILED, type AsyncTrainStats, type WorkerReport } from './async/async-run';
export type { AsyncTrainOptions, UpdateInfo } from './async/options';
export type { StalenessStats } from './async/staleness';
