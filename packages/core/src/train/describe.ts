import { formatAdapter, type GpuAdapter } from '../backend/webgpu';
import type { HookName } from '../hooks/hooks';
import type { MemoryPlan } from '../step/memory-plan';

export interface TrainerDescription {
  backend: string;
  /** The GPU adapter (vendor, architecture, software or not) when the backend is 'webgpu'. */
  adapter?: GpuAdapter;
  /** The backend with its set-up, e.g. 'wasm, 2 threads (auto: 2 cores, load 0.31)'. */
  backendDetail: string;
  plugins: string[];
  hooks: Record<HookName, string[]>;
  stepTransforms: string[];
  optimizer: string;
  memoryPlan?: MemoryPlan;
  trainableParams: number;
  /** Layers whose weight penalties (regularizers) are added to the loss, as model.fit adds them. */
  penalties?: string[];
  /** Trainable weights with a constraint ('name (MaxNorm)'), and whether the trainer projects them after each update. */
  constraints?: { weights: string[]; applied: boolean };
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MiB`;

/** Human-readable form of `trainer.describe()`. */
export function describeTrainer(d: TrainerDescription): string {
  const lines = [
    `tapfit trainer on ${d.backendDetail}${d.adapter ? ` (adapter ${formatAdapter(d.adapter)})` : ''}: ${d.trainableParams} trainable parameters`,
    `plugins: ${d.plugins.join(', ') || '(none)'}`,
    'hooks (in run order):',
    ...Object.entries(d.hooks).map(([k, v]) => `  ${k.padEnd(15)} ${v.length ? v.join(' -> ') : '-'}`),
    `update: ${d.optimizer === 'chain' ? d.stepTransforms.join(' -> ') || '(empty chain)' : `${d.optimizer} (black box)`}`,
  ];
  if (d.penalties?.length) lines.push(`weight penalties (in the loss): ${d.penalties.join(', ')}`);
  if (d.constraints?.weights.length) lines.push(`constraints (${d.constraints.applied ? 'projected after each update' : "ignored: constraints 'ignore'"}): ${d.constraints.weights.join(', ')}`);
  if (d.memoryPlan) {
    const peak = d.memoryPlan.predictedPeakBytes;
    lines.push(`memory plan${peak !== undefined ? ` (predicted peak ${mib(peak)})` : ''}:`);
    for (const s of d.memoryPlan.segments) lines.push(`  ${s.name.padEnd(24)} ${s.policy}${s.predictedBytes !== undefined ? `  ${mib(s.predictedBytes)}` : ''}`);
    for (const e of d.memoryPlan.extraBytes) lines.push(`  + ${e.source}: ${mib(e.bytes)}`);
  }
  return lines.join('\n');
}
