import { ConsoleLogger, type Logger, type TapfitError } from '@tapfit/core';
import { checkFlag, shown } from './config';
import { configError } from './errors';

export interface PlannedLayer {
  readonly path: string;
  readonly className: string;
  readonly kernelShape: number[];
  readonly fanIn: number;
  readonly fanOut: number;
  /** Parameters of the base layer (kernel + bias), frozen under LoRA. */
  readonly baseParams: number;
  /** r * (fanIn + fanOut): the trainable parameters LoRA adds. */
  readonly adapterParams: number;
  /** The target selectors that picked this layer. */
  readonly matchedBy: string[];
}

export interface SelectorProblem {
  readonly option: 'targets' | 'exclude' | 'modulesToSave';
  readonly selector: string;
  readonly reason: string;
}

/** What applyLora would do: the dry-run report. */
export interface LoraPlan {
  /** 'segments' for a plan over a segment model's variables (applyLoraToSegments); absent for layers. */
  readonly kind?: 'segments';
  readonly rank: number;
  readonly adapted: PlannedLayer[];
  /** Layers trained in full (modulesToSave). */
  readonly saved: { path: string; className: string; params: number }[];
  /** Layers a target matched but `exclude` removed. */
  readonly excluded: string[];
  /** Selectors that matched nothing usable: applyLora refuses to run with any. */
  readonly unmatched: SelectorProblem[];
  /** Other reasons applyLora would refuse (rank too high, overlapping options). */
  readonly problems: string[];
  /** Every layer of the model, for error messages: 'path (Class kernelShape)'. */
  readonly available: string[];
  readonly baseParams: number;
  readonly trainableParams: number;
}

/** The error applyLora raises for a plan it cannot carry out, or null. */
export function planError(plan: LoraPlan): TapfitError | null {
  if (!plan.unmatched.length && !plan.problems.length) return null;
  const lines = [
    ...plan.unmatched.map((u) => `${u.option} selector ${u.selector} ${u.reason}`),
    ...plan.problems,
    `${plan.kind === 'segments' ? 'Variables of this segment model' : 'Layers of this model'}: ${plan.available.join(', ')}.`,
  ];
  return configError(`cannot apply LoRA:\n  - ${lines.join('\n  - ')}`);
}

/** A printable table of the plan (the dry-run report). */
export function formatPlan(plan: LoraPlan): string {
  const rows = [
    [plan.kind === 'segments' ? 'variable' : 'layer', 'class', 'kernel', 'base params', 'LoRA params', 'matched by'],
    ...plan.adapted.map((l) => [l.path, l.className, l.kernelShape.join('x'), String(l.baseParams), String(l.adapterParams), l.matchedBy.join(' ')]),
    ...plan.saved.map((l) => [l.path, l.className, '(trained in full)', String(l.params), String(l.params), 'modulesToSave']),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const table = rows.map((r) => r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd());
  const pct = plan.baseParams ? ((100 * plan.trainableParams) / plan.baseParams).toFixed(3) : '0';
  const out = [`LoRA plan (rank ${plan.rank}):`, ...table, `trainable parameters: ${plan.trainableParams} (${pct}% of the base model's ${plan.baseParams})`];
  if (plan.excluded.length) out.push(`excluded: ${plan.excluded.join(', ')}`);
  for (const u of plan.unmatched) out.push(`UNMATCHED ${u.option} ${u.selector}: ${u.reason}`);
  for (const p of plan.problems) out.push(`PROBLEM: ${p}`);
  return out.join('\n');
}

/** The options of a dry run of applyLora / applyLoraToSegments. */
export interface DryRunOptions {
  /** Change nothing: log the plan through `logger` and return it; unmatched selectors are listed, not thrown. */
  dryRun?: boolean | undefined;
  /** Where a dry run logs its plan. Default: the console (core's ConsoleLogger); a SilentLogger only returns it. */
  logger?: Logger | undefined;
}

/**
 * `dryRun` and `logger`, checked: a string `dryRun: 'false'` would be truthy and skip the
 * build, and a logger without `info` would fail the dry run with a bare TypeError.
 */
export function resolveDryRun(opts: DryRunOptions): { dryRun: boolean; logger?: Logger } {
  checkFlag('dryRun', opts.dryRun, 'use the boolean true (plan only) or false (build the model)');
  const { logger } = opts;
  if (logger !== undefined) {
    const methods = logger as unknown as Record<string, unknown> | null;
    const missing = ['info', 'warn'].filter((m) => typeof methods?.[m] !== 'function');
    if (missing.length) {
      throw configError(
        `option 'logger' must be a core Logger with info(message) and warn(message) methods (${methods !== null && typeof methods === 'object' ? `it has no ${missing.join(' or ')} method` : `got ${shown(logger)}`}); pass e.g. new ConsoleLogger() or new SilentLogger() from @tapfit/core, or leave it out to log to the console.`,
      );
    }
  }
  return { dryRun: opts.dryRun ?? false, logger };
}

/** A dry run's report: the plan, logged (its one purpose is to be seen) and returned. */
export function reportPlan(plan: LoraPlan, logger: Logger = new ConsoleLogger()): LoraPlan {
  logger.info(formatPlan(plan));
  return plan;
}
