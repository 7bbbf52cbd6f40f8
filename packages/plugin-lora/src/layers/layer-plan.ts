import type * as tf from '@tensorflow/tfjs';
import { type AdapterSpec, asList, type LoraOptions } from '../common/config';
import { configError } from '../common/errors';
import type { LoraPlan, PlannedLayer, SelectorProblem } from '../common/lora-plan';
import { checkSelector, describeSelector, hintFor } from '../common/selectors';
import { catalog, fansOf, type LayerEntry } from './catalog';
import { selectsLayer } from './layer-selector';
import { LoraLayer } from './lora-layer';

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
    const hits = entries.filter((e) => selectsLayer(s, e));
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
    const hits = entries.filter((e) => selectsLayer(s, e));
    if (hits.length === 0) unmatched.push({ option: 'exclude', selector: describeSelector(s), reason: `matches no layer.${hintFor(s, entries)}` });
    for (const e of hits) if (picked.delete(e)) excluded.push(e.path);
  }
  const saved: LoraPlan['saved'] = [];
  for (const s of saves) {
    const hits = entries.filter((e) => selectsLayer(s, e) && e.params > 0);
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
