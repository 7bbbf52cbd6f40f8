import type * as tf from '@tensorflow/tfjs';
import type { TrainableModel } from '@tapfit/core';
import { type AdapterSpec, asList, configError, type LayerSelector, type LoraOptions } from '../shared/config';
import type { LoraPlan, PlannedLayer, SelectorProblem } from '../shared/lora-plan';
import { checkSelector, describeSelector, hintFor } from '../shared/selectors';

/** One variable of a segment model, as selectors and reports see it. */
export interface VariableEntry {
  /** 'segment/name'; unnamed variables (tfjs ids) are 'segment/param<i>' by position. */
  readonly path: string;
  readonly segment: string;
  readonly variable: tf.Variable;
  /** Set when LoRA cannot adapt the variable. */
  readonly unsupported?: string;
  /** In the last segment that has a 2-D variable: the output head, which 'all-linear' skips. */
  readonly isHead: boolean;
}

/** Variables that are some LoRA's adapter weights (never base weights to adapt). */
export const adapterVariables = new WeakSet<tf.Variable>();
/** Base variables a live segment LoRA adapts (adapting them twice would stack updates silently). */
export const adaptedVariables = new WeakSet<tf.Variable>();

/** tfjs names unnamed variables by a global counter, which differs between runs. */
const AUTO_NAME = /^\d+$/;

/**
 * Every base variable of a segment model, in segment order. A variable that several
 * segments share is listed once, under the first.
 */
export function segmentCatalog(model: TrainableModel): VariableEntry[] {
  const seen = new Set<tf.Variable>();
  const out: { path: string; segment: string; variable: tf.Variable; unsupported?: string }[] = [];
  for (const s of model.segments) {
    s.params.forEach((v, i) => {
      if (seen.has(v) || adapterVariables.has(v)) return;
      seen.add(v);
      const local = AUTO_NAME.test(v.name) ? `param${i}` : v.name;
      const unsupported =
        v.rank !== 2 ? `${v.rank}-D [${v.shape.join(', ')}]; LoRA on segments adapts 2-D weights [in, out]` : v.dtype !== 'float32' ? `dtype ${v.dtype}; LoRA adapts float32 weights` : undefined;
      out.push({ path: `${s.name}/${local}`, segment: s.name, variable: v, unsupported });
    });
  }
  const head = [...out].reverse().find((e) => !e.unsupported)?.segment;
  return out.map((e) => ({ ...e, isHead: e.segment === head }));
}

/**
 * Does selector `s` pick variable `e`? An exact string names the variable's path, its
 * tfjs name or its segment (all its variables); '*suffix' and RegExps test the path;
 * 'all-dense' picks every 2-D variable and 'all-linear' all but the output head's.
 */
export function selectsVariable(s: LayerSelector, e: VariableEntry): boolean {
  if (s instanceof RegExp) return new RegExp(s.source, s.flags.replace(/[gy]/g, '')).test(e.path);
  switch (s) {
    case 'all-dense':
      return !e.unsupported;
    case 'all-linear':
      return !e.unsupported && !e.isHead;
    case 'all-conv2d':
    case 'all-embedding':
      return false; // segments carry no layer classes; see `keywordReason`
  }
  if (s.startsWith('*')) return e.path.endsWith(s.slice(1));
  return e.path === s || e.variable.name === s || e.segment === s;
}

/** Why a keyword matched nothing, where the generic 'matches no variable' would mislead. */
function keywordReason(s: LayerSelector, entries: readonly VariableEntry[]): string | null {
  if (s === 'all-conv2d' || s === 'all-embedding') {
    return `cannot be used on a segment model: segments carry no layer classes. Name the 2-D variables (paths, segment names, '*suffix' or a RegExp), or use 'all-dense' / 'all-linear'.`;
  }
  const head = entries.find((e) => e.isHead && !e.unsupported);
  if (s === 'all-linear' && head) return `matches no variable: every 2-D variable is in the output head segment '${head.segment}', which 'all-linear' skips. Use 'all-dense' or name the variables.`;
  return null;
}

/** Match the options against a segment model without changing anything (the dry-run report). */
export function planSegmentLora(model: TrainableModel, opts: LoraOptions, spec: AdapterSpec): LoraPlan {
  if (model.layersModel) {
    throw configError(`applyLoraToSegments: this model wraps the tfjs-layers model '${model.layersModel.name}', whose segments do not read their weights through readParam; use applyLora(model.layersModel, options).`);
  }
  if (spec.dropout > 0) {
    throw configError(
      `option 'dropout' = ${spec.dropout} is not supported on segment models: LoRA on segments substitutes the weight W + s·A·B, so it never sees the adapter branch's input to drop. Use dropout: 0.`,
    );
  }
  const wrapped = model.segments.filter((s) => s.params.some((v) => adapterVariables.has(v))).map((s) => s.name);
  if (wrapped.length) {
    throw configError(`segments ${wrapped.join(', ')} already have LoRA adapters; apply LoRA to the base model (unload() or dispose() the first LoRA to change targets).`);
  }
  const entries = segmentCatalog(model);
  const twice = entries.filter((e) => adaptedVariables.has(e.variable)).map((e) => e.path);
  if (twice.length) throw configError(`variables ${twice.join(', ')} are already adapted by LoRA; unload() or dispose() that LoRA before applying another.`);
  const targets = asList(opts.targets).map((s) => checkSelector(s, 'targets'));
  if (targets.length === 0) throw configError(`option 'targets' is empty; name the variables to adapt (e.g. 'all-linear', 'fc1/w', a segment name, '*_w' or a RegExp).`);
  const excludes = asList(opts.exclude).map((s) => checkSelector(s, 'exclude'));
  const saves = asList(opts.modulesToSave).map((s) => checkSelector(s, 'modulesToSave'));

  const unmatched: SelectorProblem[] = [];
  const problems: string[] = [];
  const picked = new Map<VariableEntry, string[]>();
  for (const s of targets) {
    const hits = entries.filter((e) => selectsVariable(s, e));
    const usable = hits.filter((e) => !e.unsupported);
    if (usable.length === 0) {
      const reason =
        keywordReason(s, entries) ??
        (hits.length
          ? `matches only variables LoRA cannot adapt: ${hits.map((e) => `${e.path} (${e.unsupported})`).join(', ')}.`
          : `matches no variable.${hintFor(s, entries)}`);
      unmatched.push({ option: 'targets', selector: describeSelector(s), reason });
    }
    for (const e of usable) picked.set(e, [...(picked.get(e) ?? []), describeSelector(s)]);
  }
  const excluded: string[] = [];
  for (const s of excludes) {
    const hits = entries.filter((e) => selectsVariable(s, e));
    if (hits.length === 0) unmatched.push({ option: 'exclude', selector: describeSelector(s), reason: `matches no variable.${hintFor(s, entries)}` });
    for (const e of hits) if (picked.delete(e)) excluded.push(e.path);
  }
  const saved: LoraPlan['saved'] = [];
  for (const s of saves) {
    const hits = entries.filter((e) => selectsVariable(s, e));
    if (hits.length === 0) unmatched.push({ option: 'modulesToSave', selector: describeSelector(s), reason: `matches no variable.${hintFor(s, entries)}` });
    for (const e of hits) {
      if (picked.has(e)) problems.push(`variable '${e.path}' is both a LoRA target and in modulesToSave; a variable is either adapted or trained in full (add it to 'exclude' to train it in full).`);
      else if (!saved.some((x) => x.path === e.path)) saved.push({ path: e.path, className: 'Variable', params: e.variable.size });
    }
  }
  if (picked.size === 0 && unmatched.every((u) => u.option !== 'targets')) problems.push(`'exclude' removes every variable the targets matched; nothing would be adapted.`);

  const adapted: PlannedLayer[] = [];
  for (const e of entries) {
    const by = picked.get(e);
    if (!by) continue;
    const [fanIn, fanOut] = e.variable.shape;
    if (spec.rank > Math.min(fanIn, fanOut)) {
      problems.push(`option 'rank' = ${spec.rank} exceeds min(in, out) = min(${fanIn}, ${fanOut}) of variable '${e.path}'; use rank <= ${Math.min(fanIn, fanOut)} or exclude it.`);
    }
    adapted.push({ path: e.path, className: 'Variable', kernelShape: [fanIn, fanOut], fanIn, fanOut, baseParams: e.variable.size, adapterParams: spec.rank * (fanIn + fanOut), matchedBy: by });
  }
  const baseParams = entries.reduce((a, e) => a + e.variable.size, 0);
  const trainableParams = adapted.reduce((a, l) => a + l.adapterParams, 0) + saved.reduce((a, l) => a + l.params, 0);
  const available = entries.map((e) => `${e.path} (${e.variable.shape.join('x') || 'scalar'}${e.isHead && !e.unsupported ? ', output head' : ''})`);
  return { kind: 'segments', rank: spec.rank, adapted, saved, excluded, unmatched, problems, available, baseParams, trainableParams };
}

/** The variables a plan names, by path (the plan was made from this model's catalog). */
export function entriesByPath(model: TrainableModel): Map<string, VariableEntry> {
  return new Map(segmentCatalog(model).map((e) => [e.path, e]));
}
