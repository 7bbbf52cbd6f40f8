export * from './data/mnist';
export * from './presets';
export * from './config';
export * from './run-config';
export { RunInterrupted } from './run-interrupted';
export { progressBar, type ProgressOptions, type ProgressPlugin } from './plugins/progress-bar';
export { jsonlMetrics } from './plugins/jsonl-metrics';
export { checkpoints } from './plugins/checkpoints';
export { PLUGIN_MATRIX, type MatrixEntry } from './backend-matrix';
