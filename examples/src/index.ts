export * from './data/mnist';
export * from './presets';
export * from './config';
export * from './run-config';
export { progressBar } from './plugins/progress-bar';
export { jsonlMetrics } from './plugins/jsonl-metrics';
export { checkpoints } from './plugins/checkpoints';
export { PLUGIN_MATRIX, type MatrixEntry } from './backend-matrix';
