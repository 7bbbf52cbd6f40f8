import { isLayersAdapter, type TrainableModel } from '@tapfit/core';
import { type AdapterSpec, asList, type LoraOptions } from '../common/config';
import { configError } from '../common/errors';
import type { LoraPlan, PlannedLayer, SelectorProblem } from '../common/lora-plan';
import { checkSelector, describeSelector, hintFor } from '../common/selectors';
import { adaptedVariables, adapterVariables, segmentCatalog, type VariableEntry } from './segment-catalog';
import { keywordReason, selectsVariable } from './segment-selector';

/** Match the options against a segment model without changing anything (the dry-run report). */
export function planSegmentLora(model: TrainableModel, opts: LoraOptions, spec: AdapterSpec): LoraPlan {
  if (isLayersAdapter(model)) {
    throw configError(`applyLoraToSegments: this model wraps the tfjs-layers model '${model.layersModel?.name}', whose segments do not read their weights through readParam; use applyLora(model.layersModel, options).`);
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
