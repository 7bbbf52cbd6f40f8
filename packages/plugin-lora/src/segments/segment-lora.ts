import * as tf from '@tensorflow/tfjs';
import { modelVariables, readParam, uniqueVariableName, type Segment, type SegmentContext, type TrainableModel } from '@tapfit/core';
import { type AdapterFile, checkModelKind, readAdapter } from '../common/adapter-file';
import { type AdapterSpec, type LoraOptions, resolveOptions, scaleOf } from '../common/config';
import { configError, stateError } from '../common/errors';
import { KeptWeight } from '../common/kept-weight';
import { type DryRunOptions, formatPlan, type LoraPlan, planError, reportPlan, resolveDryRun } from '../common/lora-plan';
import { checkOptionKeys, DRY_RUN_KEYS, LORA_KEYS } from '../common/option-keys';
import { exactPath } from '../common/selectors';
import { loadSegmentAdapter, saveSegmentAdapter } from './segment-adapter-io';
import { adaptedVariables, adapterVariables, entriesByPath } from './segment-catalog';
import { planSegmentLora } from './segment-plan';

/** One adapted weight: W [in, out] (frozen) and its adapter A [in, r], B [r, out]. */
export interface SegmentAdapter {
  /** 'segment/name' (see `applyLoraToSegments`). */
  readonly path: string;
  readonly W: tf.Variable;
  readonly A: tf.Variable;
  readonly B: tf.Variable;
}

/** s·A·B, the update LoRA adds to W. The forward and merge() share it, so a merged W is bit for bit the weight the unmerged forward used. */
function delta(A: tf.Tensor, B: tf.Tensor, scale: number): tf.Tensor {
  return tf.mul(tf.matMul(A, B), scale);
}

/**
 * Wrap the targeted 2-D variables of a segment model with LoRA. Each target W [in, out]
 * is frozen and gets A [in, r] (seeded kaiming-uniform or gaussian) and B [r, out] = 0.
 * The returned model's segments list their original params plus A and B, and run the
 * original forward with `ctx.weights` resolving W to W + s·A·B (on top of any outer
 * resolver), so outputs start equal to the base model's. Every other variable is
 * frozen, except `modulesToSave`.
 *
 * Unlike `applyLora`, the segments and their variables are shared with `model`: the
 * base variables' `trainable` flags change (restored by `unload()` / `dispose()`) and
 * `merge()` writes W itself. Segments must read their parameters with
 * `readParam(ctx, w)`; one that reads a target directly fails its first forward.
 *
 * Nothing is logged: the plan is on the handle (`plan`, `describe()`). With
 * `dryRun: true` nothing changes: the plan is logged through `logger` (default: the
 * console) and returned.
 */
export function applyLoraToSegments(model: TrainableModel, opts: LoraOptions & DryRunOptions & { dryRun: true }): LoraPlan;
export function applyLoraToSegments(model: TrainableModel, opts: LoraOptions & DryRunOptions & { dryRun?: false | undefined }): LoraSegmentModel;
/** `dryRun` known only at run time (a CLI flag): the plan or the model, as it says. */
export function applyLoraToSegments(model: TrainableModel, opts: LoraOptions & DryRunOptions): LoraSegmentModel | LoraPlan;
export function applyLoraToSegments(model: TrainableModel, opts: LoraOptions & DryRunOptions): LoraSegmentModel | LoraPlan {
  checkOptionKeys('applyLoraToSegments', opts, [...LORA_KEYS, ...DRY_RUN_KEYS], { verbose: "an option of the lora() plugin; applyLoraToSegments logs with dryRun: true" });
  const { dryRun, logger } = resolveDryRun(opts);
  const { spec, adapter } = resolveOptions(opts);
  const plan = planSegmentLora(model, opts, spec);
  if (dryRun) return reportPlan(plan, logger);
  const err = planError(plan);
  if (err) throw err;

  const entries = entriesByPath(model);
  const created: tf.Variable[] = [];
  try {
    const adapters = plan.adapted.map((l, i): SegmentAdapter => {
      const W = entries.get(l.path)!.variable;
      const seed = opts.seed === undefined ? undefined : opts.seed + 1000 * i;
      const A = newVariable(initialA(spec, l.fanIn, seed), `${l.path}/lora_A.${adapter}`);
      created.push(A);
      const B = newVariable(tf.zeros([spec.rank, l.fanOut]), `${l.path}/lora_B.${adapter}`);
      created.push(B);
      return { path: l.path, W, A, B };
    });
    const saved = plan.saved.map((s) => ({ path: s.path, variable: entries.get(s.path)!.variable }));
    return new LoraSegmentModel(model, plan, spec, adapter, adapters, saved);
  } catch (e) {
    tf.dispose(created);
    throw e;
  }
}

/** PEFT's default U(-1/sqrt(in), 1/sqrt(in)), or N(0, (1/r)²). */
function initialA(spec: AdapterSpec, fanIn: number, seed: number | undefined): tf.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return spec.init === 'kaiming' ? tf.randomUniform([fanIn, spec.rank], -bound, bound, 'float32', seed) : tf.randomNormal([fanIn, spec.rank], 0, 1 / spec.rank, 'float32', seed);
}

/** A trainable variable holding `init` (disposed), under a name no live variable has (tfjs names are global). */
function newVariable(init: tf.Tensor, name: string): tf.Variable {
  const v = tf.variable(init, true, uniqueVariableName(name));
  init.dispose();
  adapterVariables.add(v);
  return v;
}

/**
 * A handle on a segment model with LoRA (one adapter). `model` is what to train and run;
 * `base` is the model it was made from, whose variables it shares.
 */
export class LoraSegmentModel {
  /** The segment model to train and run: the base segments, wrapped where they hold a target. */
  readonly model: TrainableModel;
  private readonly byWeight: Map<tf.Variable, SegmentAdapter>;
  /** The base variables' `trainable` flags before LoRA froze them. */
  private readonly flags: Map<tf.Variable, boolean>;
  private merged = false;
  /** The base weights merge() overwrote, one per target, while merged. */
  private kept: KeptWeight[] = [];
  private released = false;

  /** Use `applyLoraToSegments`; this constructor takes over variables it is given. */
  constructor(
    readonly base: TrainableModel,
    readonly plan: LoraPlan,
    readonly spec: AdapterSpec,
    readonly adapter: string,
    readonly adapters: readonly SegmentAdapter[],
    /** Variables trained in full next to the adapters (modulesToSave). */
    readonly saved: readonly { path: string; variable: tf.Variable }[],
  ) {
    this.byWeight = new Map(adapters.map((a) => [a.W, a]));
    const keep = new Set(saved.map((s) => s.variable));
    const vars = modelVariables(base);
    this.flags = new Map(vars.map((v) => [v, v.trainable]));
    // modulesToSave train in full, but what was never trainable (normalisation statistics) stays so.
    for (const v of vars) v.trainable = keep.has(v) && v.trainable;
    for (const a of adapters) adaptedVariables.add(a.W);
    this.model = {
      segments: base.segments.map((s) => this.wrap(s)),
      ...(base.inputShape ? { inputShape: base.inputShape } : {}),
      ...(base.outputShape ? { outputShape: base.outputShape } : {}),
    };
  }

  /** Rebuild a saved segment adapter on its base model (same targets and spec), checking the base fingerprint. */
  static async load(base: TrainableModel, dir: string): Promise<LoraSegmentModel> {
    const { file } = await readAdapter(dir);
    checkModelKind(file, dir, 'segments');
    const lora = applyLoraToSegments(base, { ...file.spec, targets: file.targets.map(exactPath), modulesToSave: file.modulesToSave.map(exactPath), adapterName: file.adapter });
    try {
      await lora.loadAdapter(dir);
    } catch (err) {
      lora.dispose();
      throw err;
    }
    return lora;
  }

  /** s = alpha / r (alpha / sqrt(r) with rsLora). */
  get scale(): number {
    return scaleOf(this.spec);
  }

  get isMerged(): boolean {
    return this.merged;
  }

  /** Paths of the adapted variables. */
  get targets(): string[] {
    return this.adapters.map((a) => a.path);
  }

  /** Parameters that get gradients: r·(in + out) per target, plus modulesToSave. */
  get trainableParams(): number {
    return modelVariables(this.model)
      .filter((v) => v.trainable)
      .reduce((a, v) => a + v.size, 0);
  }

  /** Fold the adapter into the base weights (W += s·A·B): all targets or, on error, none. */
  merge(): this {
    this.live('merge');
    if (this.merged) throw stateError(`merge: adapter '${this.adapter}' is already merged (variables ${this.targets.join(', ')}); merging twice would add the update twice. Call unmerge() first.`);
    this.swap(true);
    return this;
  }

  /** Undo `merge`: the weights it overwrote, bit for bit (W -= s·A·B, to float rounding, for a W written since). */
  unmerge(): this {
    this.live('unmerge');
    if (!this.merged) throw stateError(`unmerge: adapter '${this.adapter}' is not merged (variables ${this.targets.join(', ')}); nothing to unmerge.`);
    this.swap(false);
    return this;
  }

  /**
   * Fold the adapter into the base weights for good and give the base model back, with
   * the `trainable` flags it had before LoRA. A and B are freed; this handle is done.
   */
  unload(): TrainableModel {
    this.live('unload');
    if (!this.merged) this.swap(true);
    this.release();
    return this.base;
  }

  /** Free A and B and give the base back as it was: unmerged (bit for bit), original flags. */
  dispose(): void {
    if (this.released) return;
    if (this.merged) this.swap(false);
    this.release();
  }

  /** Whether a base variable was trainable before LoRA froze it (false: normalisation statistics, or not a base variable). */
  wasTrainable(variable: tf.Variable): boolean {
    return this.flags.get(variable) ?? false;
  }

  saveAdapter(dir: string): Promise<AdapterFile> {
    this.live('saveAdapter');
    return saveSegmentAdapter(this, dir);
  }

  /** Load weights saved from a LoRA with the same targets and spec on the same base. */
  loadAdapter(dir: string): Promise<void> {
    this.live('loadAdapter');
    return loadSegmentAdapter(this, dir);
  }

  describe(): string {
    return formatPlan(this.plan);
  }

  /**
   * The segment with `ctx.weights` resolving its targets to W + s·A·B. Merged, the
   * forward runs unchanged (W holds the update).
   */
  private wrap(segment: Segment): Segment {
    const own = segment.params.filter((v) => this.byWeight.has(v));
    if (own.length === 0) return segment;
    const adapterParams = own.flatMap((W) => [this.byWeight.get(W)!.A, this.byWeight.get(W)!.B]);
    // `requireReads`: a forward must read every target through readParam (else it ignores
    // ctx.weights and LoRA would silently do nothing); an inverse need not (a growing
    // RevSilo's inverse drops the stream it grew without evaluating its transform).
    const run = <T>(ctx: SegmentContext, f: (c: SegmentContext) => T, requireReads: boolean): T => {
      if (this.released) throw stateError(`segment '${segment.name}': this LoRA was unloaded or disposed; run the model unload() returned.`);
      if (this.merged) {
        if (ctx.training) throw stateError(`segment '${segment.name}': adapter '${this.adapter}' is merged into its weights; call unmerge() before training.`);
        return f(ctx);
      }
      const read = new Set<tf.Variable>();
      const weights = (v: tf.Variable): tf.Tensor => {
        const a = this.byWeight.get(v);
        if (!a) return readParam(ctx, v);
        read.add(v);
        return tf.add(readParam(ctx, v), delta(readParam(ctx, a.A), readParam(ctx, a.B), this.scale));
      };
      const out = f({ ...ctx, weights });
      const missed = requireReads ? own.filter((W) => !read.has(W)).map((W) => this.byWeight.get(W)!.path) : [];
      if (missed.length) {
        throw configError(
          `segment '${segment.name}' did not read ${missed.join(', ')} through readParam(ctx, w), so LoRA cannot substitute W + s·A·B. Read the weights in its forward with readParam(ctx, w) (from @tapfit/core).`,
        );
      }
      return out;
    };
    return {
      name: segment.name,
      params: [...segment.params, ...adapterParams],
      forward: (xs, ctx) => run(ctx, (c) => segment.forward(xs, c), true),
      ...(segment.inverse ? { inverse: (ys: tf.Tensor[], ctx: SegmentContext) => run(ctx, (c) => segment.inverse!(ys, c), false) } : {}),
    };
  }

  /** W + s·A·B for every target, or back (the kept W; W - s·A·B for one assigned since), all computed and checked finite before any is written. */
  private swap(merge: boolean): void {
    const next = this.adapters.map((a, i) => (!merge && this.kept[i]?.restored(a.W)) || tf.tidy(() => (merge ? tf.add : tf.sub)(a.W, delta(a.A, a.B, this.scale))));
    try {
      const bad = this.adapters.filter((_, i) => !tf.tidy(() => tf.all(tf.isFinite(next[i])).dataSync()[0]));
      if (bad.length) {
        throw stateError(`${merge ? 'merge' : 'unmerge'}: the result is not finite for ${bad.map((a) => a.path).join(', ')}; the adapter weights hold NaN or Inf. Nothing was changed.`);
      }
      if (merge) {
        this.kept = this.adapters.map((a, i) => KeptWeight.write(a.W, next[i], (t) => a.W.assign(t)));
      } else {
        this.adapters.forEach((a, i) => a.W.assign(next[i]));
        this.dropKept();
      }
      this.merged = merge;
    } finally {
      tf.dispose(next);
    }
  }

  private dropKept(): void {
    for (const k of this.kept) k.dispose();
    this.kept = [];
  }

  private release(): void {
    this.dropKept(); // after unload() W stays merged: the copies from before go
    for (const [v, trainable] of this.flags) v.trainable = trainable;
    for (const a of this.adapters) {
      adaptedVariables.delete(a.W);
      tf.dispose([a.A, a.B]);
    }
    this.released = true;
  }

  private live(action: string): void {
    if (this.released) throw stateError(`${action}: this LoRA was unloaded or disposed; apply LoRA again to the base model.`);
  }
}
