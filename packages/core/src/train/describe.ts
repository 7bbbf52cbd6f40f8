import { formatBytes } from '../backend/memory-guard';
import { formatAdapter, type GpuAdapter } from '../backend/webgpu';
import type { HookName } from '../hooks/hooks';
import { runsOnExecutor } from '../memory/planned-backprop';
import type { TapfitPlugin } from '../plugin/types';
import { type Backprop, Tokens } from '../services/tokens';
import type { MemoryPlan } from '../step/memory-plan';
import { ChainStepper, type Stepper } from './stepper';

/** One member of the update chain. */
export interface UpdateMember {
  name: string;
  /** What the member is when that is not its name: a delay compensation keeps the name it replaced ('momentum') and says so in `hyperparams.compensation`. */
  kind?: string;
  /** The plugins that supplied or replaced it; absent for the optimizer's own members. */
  suppliedBy?: string[];
}

/** The Backprop that runs each step's backward. */
export interface BackpropDescription {
  /** 'core', or the plugin that provides it (`provides: [Tokens.Backprop]`). */
  provider: string;
  /** What it runs: 'autodiff', 'segment executor', or the provider's own description. */
  runs: string;
  /** Whether it runs the segments as the memory plan says. */
  realisesMemoryPlan: boolean;
  /** Where the plan holds, when the Backprop realises it for part of the step only. */
  memoryPlanScope?: string;
}

export interface TrainerDescription {
  backend: string;
  /** The GPU adapter (vendor, architecture, software or not) when the backend is 'webgpu'. */
  adapter?: GpuAdapter;
  /** The backend with its set-up, e.g. 'wasm, 2 threads (auto: 2 cores, load 0.31)'. */
  backendDetail: string;
  plugins: string[];
  hooks: Record<HookName, string[]>;
  stepTransforms: string[];
  /** The update chain's members with what replaced them (absent for a black-box optimizer). */
  updateMembers?: UpdateMember[];
  optimizer: string;
  backprop?: BackpropDescription;
  memoryPlan?: MemoryPlan;
  trainableParams: number;
  /** Layers whose weight penalties (regularizers) are added to the loss, as model.fit adds them. */
  penalties?: string[];
  /** Trainable weights with a constraint ('name (MaxNorm)'), and whether the trainer projects them after each update. */
  constraints?: { weights: string[]; applied: boolean };
}

/** MiB, except sizes that would read 0.00 MiB. */
const mib = (b: number): string => (b > 0 && b < 0.005 * 2 ** 20 ? formatBytes(b) : `${(b / 2 ** 20).toFixed(2)} MiB`);

/** The chain's members with their kind and origin, from the stepper the trainer built. */
export function describeUpdate(stepper: Stepper | undefined): { updateMembers?: UpdateMember[] } {
  if (!(stepper instanceof ChainStepper)) return {};
  const updateMembers = stepper.transforms.map((t): UpdateMember => {
    const kind = t.hyperparams?.compensation;
    const by = stepper.suppliedBy[t.name];
    return { name: t.name, ...(typeof kind === 'string' && kind !== t.name ? { kind } : {}), ...(by?.length ? { suppliedBy: [...by] } : {}) };
  });
  return { updateMembers };
}

/** Who runs the backward, and whether it realises `plan`. */
export function describeBackprop(backprop: Backprop, plugins: readonly TapfitPlugin[], plan: MemoryPlan | undefined): BackpropDescription {
  const provider = plugins.find((p) => p.provides?.includes(Tokens.Backprop))?.name;
  if (provider === undefined) return { provider: 'core', runs: plan && runsOnExecutor(plan) ? 'segment executor' : 'autodiff', realisesMemoryPlan: true };
  const scope = backprop.realisesMemoryPlan === true ? backprop.memoryPlanScope : undefined;
  return { provider, runs: backprop.description ?? 'its own Backprop', realisesMemoryPlan: backprop.realisesMemoryPlan === true, ...(scope ? { memoryPlanScope: scope } : {}) };
}

function formatMember(m: UpdateMember): string {
  const by = m.suppliedBy?.filter((p) => p !== m.kind) ?? []; // plugin 'adaptive-braking' supplying kind 'adaptive-braking' says it once
  const notes = [m.kind, by.length ? `by ${by.join(', ')}` : undefined].filter(Boolean);
  return notes.length ? `${m.name} [${notes.join(', ')}]` : m.name;
}

function formatUpdate(d: TrainerDescription): string {
  if (d.optimizer !== 'chain') return `${d.optimizer} (black box)`;
  const members = d.updateMembers?.map(formatMember) ?? d.stepTransforms;
  return members.join(' -> ') || '(empty chain)';
}

/** Human-readable form of `trainer.describe()`. */
export function describeTrainer(d: TrainerDescription): string {
  const lines = [
    `tapfit trainer on ${d.backendDetail}${d.adapter ? ` (adapter ${formatAdapter(d.adapter)})` : ''}: ${d.trainableParams} trainable parameters`,
    `plugins: ${d.plugins.join(', ') || '(none)'}`,
    'hooks (in run order):',
    ...Object.entries(d.hooks).map(([k, v]) => `  ${k.padEnd(15)} ${v.length ? v.join(' -> ') : '-'}`),
    `update: ${formatUpdate(d)}`,
  ];
  if (d.backprop) lines.push(`backprop: ${d.backprop.provider === 'core' ? 'core' : `plugin '${d.backprop.provider}'`} (${d.backprop.runs})`);
  if (d.penalties?.length) lines.push(`weight penalties (in the loss): ${d.penalties.join(', ')}`);
  if (d.constraints?.weights.length) lines.push(`constraints (${d.constraints.applied ? 'projected after each update' : "ignored: constraints 'ignore'"}): ${d.constraints.weights.join(', ')}`);
  if (d.memoryPlan) {
    const extra = d.memoryPlan.extraBytes.map((e) => `  + ${e.source}: ${mib(e.bytes)}`);
    if (d.backprop && !d.backprop.realisesMemoryPlan) {
      // Its per-segment policies would read as realised: say it is unused, keep the memory other parts hold.
      lines.push(`memory plan: not used by the Backprop of plugin '${d.backprop.provider}'${extra.length ? '; extra memory:' : ''}`, ...extra);
    } else {
      const peak = d.memoryPlan.predictedPeakBytes;
      const notes = [peak !== undefined ? `predicted peak ${mib(peak)}` : undefined, d.backprop?.memoryPlanScope ? `realised on ${d.backprop.memoryPlanScope}` : undefined].filter(Boolean);
      lines.push(`memory plan${notes.length ? ` (${notes.join('; ')})` : ''}:`);
      for (const s of d.memoryPlan.segments) lines.push(`  ${s.name.padEnd(24)} ${s.policy}${s.predictedBytes !== undefined ? `  ${mib(s.predictedBytes)}` : ''}`);
      lines.push(...extra);
    }
  }
  return lines.join('\n');
}
