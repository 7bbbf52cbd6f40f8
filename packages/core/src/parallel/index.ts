// Data-parallel replicas: one batch, split across worker threads, combined as one gradient.
export { dataParallel } from './data-parallel';
export type { DataParallelOptions } from './options';
export { DATA_PARALLEL_PLUGIN } from './replicable';
