/** How the executor treats a segment's activations during training. */
export type MemoryPolicy = 'store' | 'recompute' | 'invert';

export const MEMORY_POLICIES: readonly MemoryPolicy[] = ['store', 'recompute', 'invert'];

export interface SegmentPlan {
  readonly name: string;
  policy: MemoryPolicy;
  /**
   * Bytes of activations this segment keeps for backward under its policy (when
   * measured): `store` what its tape keeps (outputs included), `recompute` its input,
   * `invert` nothing.
   */
  predictedBytes?: number;
}

/**
 * What the `planMemory` hook passes along: one entry per segment plus bytes that
 * plugins hold outside the segments (stashed activations, frozen copies, ...).
 */
export interface MemoryPlan {
  segments: SegmentPlan[];
  extraBytes: { source: string; bytes: number }[];
  /** Predicted peak training bytes of one step, when a planner has measured it. */
  predictedPeakBytes?: number;
  /** The batch size the prediction was measured at (it holds for that batch size only). */
  measuredBatchSize?: number;
}

/** The default plan: plain autodiff everywhere. */
export function storeAllPlan(segmentNames: readonly string[]): MemoryPlan {
  return { segments: segmentNames.map((name) => ({ name, policy: 'store' })), extraBytes: [] };
}
