import type * as tf from '@tensorflow/tfjs';
import { type AdapterSpec, asList, configError, type LoraOptions } from './config';
import { catalog, fansOf, type LayerEntry } from '../layers/catalog';
import { LoraLayer } from '../layers/lora-layer';
import { checkSelector, describeSelector, hintFor, selects } from './selectors';

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

/** Match the options against the model without changing anything. */
export function planLora(model: tf.LayersModel, opts: LoraOptions, spec: AdapterSpec): LoraPlan {
  const entries = catalog(model);
  const already = entries.filter((e) => e.layer instanceof LoraLayer).map((e) => e.path);
  if (already.length) {
    throw configError(`the model already has LoRA layers (${already.join(', ')}); add adapters with LoraModel.from(model).addAdapter(...) instead of applying LoRA twice.`);
  }
  const targets = asList(opts.targets).map((s) => checkSelector(s, 'targets'));
  if (targets.length === 0) throw configError(`option 'targets' is empty; name the layers to adapt (e.g. 'all-linear', 'fc1', '*_proj' or a RegExp).`);
  const excludes = asList(opts.exclude).map((s) => checkSelector(s, 'exclude'));
  const saves = asList(opts.modulesToSave).map((s) => checkSelector(s, 'modulesToSave'));

  const unmatched: SelectorProblem[] = [];
  const problems: string[] = [];
  const picked = new Map<LayerEntry, string[]>();
  for (const s of targets) {
    const hits = entries.filter((e) => selects(s, e));
    const usable = hits.filter((e) => e.kind && !e.unsupported);
    if (usable.length === 0) {
      const reason = hits.length
        ? `matches only layers LoRA cannot wrap: ${hits.map((e) => `${e.path} (${e.className}${e.unsupported ? `: ${e.unsupported}` : ''})`).join(', ')}; LoRA wraps Dense, Conv2D and Embedding.`
        : `matches no layer.${hintFor(s, entries)}`;
      unmatched.push({ option: 'targets', selector: describeSelector(s), reason });
    }
    for (const e of usable) picked.set(e, [...(picked.get(e) ?? []), describeSelector(s)]);
  }
  const excluded: string[] = [];
  for (const s of excludes) {
    const hits = entries.filter((e) => selects(s, e));
    if (hits.length === 0) unmatched.push({ option: 'exclude', selector: describeSelector(s), reason: `matches no layer.${hintFor(s, entries)}` });
    for (const e of hits) if (picked.delete(e)) excluded.push(e.path);
  }
  const saved: LoraPlan['saved'] = [];
  for (const s of saves) {
    const hits = entries.filter((e) => selects(s, e) && e.params > 0);
    if (hits.length === 0) unmatched.push({ option: 'modulesToSave', selector: describeSelector(s), reason: `matches no layer with weights.${hintFor(s, entries)}` });
    for (const e of hits) {
      if (picked.has(e)) problems.push(`layer '${e.path}' is both a LoRA target and in modulesToSave; a layer is either adapted or trained in full (add it to 'exclude' to train it in full).`);
      else if (!saved.some((x) => x.path === e.path)) saved.push({ path: e.path, className: e.className, params: e.params });
    }
  }
  if (targets.length && picked.size === 0 && unmatched.every((u) => u.option !== 'targets')) {
    problems.push(`'exclude' removes every layer the targets matched; nothing would be adapted.`);
  }

  const adapted: PlannedLayer[] = [];
  for (const e of entries) {
    const by = picked.get(e);
    if (!by) continue;
    const kernelShape = e.kernelShape!;
    const [fanIn, fanOut] = fansOf(kernelShape);
    if (spec.rank > Math.min(fanIn, fanOut)) {
      problems.push(`option 'rank' = ${spec.rank} exceeds min(fan-in, fan-out) = min(${fanIn}, ${fanOut}) of layer '${e.path}'; use rank <= ${Math.min(fanIn, fanOut)} or exclude the layer.`);
    }
    adapted.push({ path: e.path, className: e.className, kernelShape, fanIn, fanOut, baseParams: e.params, adapterParams: spec.rank * (fanIn + fanOut), matchedBy: by });
  }
  const baseParams = entries.reduce((a, e) => a + e.params, 0);
  const trainableParams = adapted.reduce((a, l) => a + l.adapterParams, 0) + saved.reduce((a, l) => a + l.params, 0);
  const available = entries.map((e) => `${e.path} (${e.className}${e.kernelShape ? ` ${e.kernelShape.join('x')}` : ''}${e.isHead ? ', output head' : ''})`);
  return { rank: spec.rank, adapted, saved, excluded, unmatched, problems, available, baseParams, trainableParams };
}

/** The error applyLora raises for a plan it cannot carry out, or null. */
export function planError(plan: LoraPlan): Error | null {
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

