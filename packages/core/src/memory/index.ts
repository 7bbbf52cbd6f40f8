// Memory planning: per-segment policies, the executor that realises them, the planner that picks them.
export * from '../step/memory-plan';
export { SegmentExecutor } from './segment-executor';
export { PlannedBackprop } from './planned-backprop';
export { vjp } from './tape';
export { tieHostState, type HostStateSnapshot } from './host-state';
export { profileSegments, type MemoryProfile, type MemorySample, type ProfileOptions, type SegmentCost } from './profile';
export { predictPeakBytes, predictPeak, keptBytes, type PredictedPeak } from './predict';
export { BudgetPlanner, type BudgetPlannerOptions } from './budget-planner';
export { memoryBudget, type MemoryBudgetOptions } from './memory-budget';
export { valueAndGradients, vectorJacobianProduct } from './vjp';
export { watchPeakBytes, type PeakBytesWatch } from './peak-bytes';
