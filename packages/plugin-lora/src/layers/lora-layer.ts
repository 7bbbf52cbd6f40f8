import * as tf from '@tensorflow/tfjs';
import { hasNoiseIdentity, layerNoiseName, noiseSeed } from '@tapfit/core';
import { type AdapterSpec, checkAdapterName, scaleOf } from '../common/config';
import { configError, stateError } from '../common/errors';
import { KeptWeight } from '../common/kept-weight';

// tfjs-layers' own aliases (not re-exported by the union package).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Kwargs = { [key: string]: any };
export type Shape = (number | null)[];
export type FusedActivation = 'linear' | 'relu' | 'elu';
/** How a new adapter's A and B start (tfjs does not export its Initializer type). */
export type AdapterInit = Record<'A' | 'B', ReturnType<typeof tf.initializers.zeros>>;

/** What a LoRA layer adds to its base layer's config (serialised with the model). */
export interface LoraLayerState {
  adapters: Record<string, AdapterSpec>;
  /** The adapter in use, or null for the plain base layer. */
  active: string | null;
  /** True when the active adapter is folded into the base kernel. */
  merged: boolean;
  /** Seed for the adapters' initialisation; null draws a fresh one. */
  seed: number | null;
}

/** A LoRA layer's config: its base layer's config plus `lora`. */
export type LoraLayerConfig = tf.serialization.ConfigDict & { lora: LoraLayerState };

interface Adapter {
  readonly spec: AdapterSpec;
  readonly A: tf.LayerVariable;
  readonly B: tf.LayerVariable;
}

const FUSABLE = new Set(['linear', 'relu', 'elu']);

/**
 * A frozen base layer (kernel K, bias b) plus named low-rank adapters (A, B):
 *
 *   y = act( P(x; K) + b + s * P(drop(x); A) B )
 *
 * where P is the layer's linear map (matMul for Dense, conv for Conv2D, gather for
 * Embedding), A has K's shape with the output axis replaced by r, B is [r, out] and
 * s = alpha/r (alpha/sqrt(r) with rsLoRA). Because P is linear in its kernel, the
 * adapter equals a kernel update Delta = s * reshape(A) B, which `merge` folds into K.
 *
 * Subclasses supply P (`project`) and its fused inference form (`projectFused`).
 */
export abstract class LoraLayer extends tf.layers.Layer {
  /** Class of the wrapped layer ('Dense', 'Conv2D', 'Embedding'). */
  abstract readonly baseClassName: string;
  /** Local name of the base kernel weight ('kernel' or 'embeddings'). */
  protected readonly kernelWeightName: string = 'kernel';
  /** Dropout on integer ids would be meaningless (Embedding). */
  protected readonly adapterDropout: boolean = true;

  /** The wrapped layer's config, exactly as its getConfig returned it. */
  readonly baseConfig: tf.serialization.ConfigDict;
  private readonly activationName: string;
  private readonly activationFn: { apply(x: tf.Tensor): tf.Tensor };
  private kernelVar: tf.LayerVariable | null = null;
  private biasVar: tf.LayerVariable | null = null;
  private readonly adapters = new Map<string, Adapter>();
  private readonly initialAdapters: Record<string, AdapterSpec>;
  private activeName: string | null;
  private mergedFlag: boolean;
  /** The kernel this layer's merge overwrote (none for a model loaded merged). */
  private kept: KeptWeight | undefined;
  private readonly seed: number | null;
  private building = false;

  constructor(config: LoraLayerConfig) {
    const { lora, ...base } = config;
    super({ ...base, trainable: true } as tf.serialization.ConfigDict);
    this.baseConfig = { ...base };
    this.activationName = typeof base.activation === 'string' ? base.activation : 'linear';
    this.activationFn = tf.layers.activation({ activation: this.activationName as 'linear' }).activation;
    this.initialAdapters = { ...lora.adapters };
    this.activeName = lora.active;
    this.mergedFlag = lora.merged;
    this.seed = lora.seed ?? null;
    if (this.activeName !== null && !(this.activeName in this.initialAdapters)) {
      throw configError(`layer '${this.name}': active adapter '${this.activeName}' is not among its adapters (${Object.keys(this.initialAdapters).join(', ')}).`);
    }
    if (this.mergedFlag && this.activeName === null) throw configError(`layer '${this.name}': merged without an active adapter.`);
  }

  /** Shape of the base kernel for a given input shape. */
  protected abstract kernelShape(inputShape: Shape): number[];
  protected abstract useBias(): boolean;
  /** The layer's linear map with kernel W (no bias, no activation), differentiable. */
  protected abstract project(x: tf.Tensor, W: tf.Tensor): tf.Tensor;
  /** Same map with bias and activation fused, for inference through the base kernel only. */
  protected abstract projectFused(x: tf.Tensor, W: tf.Tensor, bias: tf.Tensor | null, activation: FusedActivation): tf.Tensor;

  override build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const kShape = this.kernelShape(shape);
    this.building = true;
    try {
      // Base weights start at zero: applyLora and model loading overwrite them.
      this.kernelVar = this.addWeight(this.kernelWeightName, kShape, 'float32', tf.initializers.zeros(), undefined, false);
      if (this.useBias()) {
        this.biasVar = this.addWeight('bias', [kShape[kShape.length - 1]], 'float32', tf.initializers.zeros(), undefined, false);
      }
      let i = 0;
      for (const [name, spec] of Object.entries(this.initialAdapters)) this.createAdapter(name, spec, this.seed === null ? undefined : this.seed + i++);
    } finally {
      this.building = false;
    }
    this.built = true;
  }

  // ---------------------------------------------------------------- forward

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const training = kwargs?.training === true;
      const K = this.kernel.read();
      const b = this.biasVar ? this.biasVar.read() : null;
      if (this.mergedFlag && training) {
        throw stateError(`layer '${this.name}' has adapter '${this.activeName}' merged into its kernel; call unmerge() before training.`);
      }
      const adapter = this.mergedFlag || this.activeName === null ? null : this.adapters.get(this.activeName)!;
      if (adapter === null) {
        // Base kernel only (plain, or merged): exactly the wrapped layer's computation.
        const fused = FUSABLE.has(this.activationName);
        const y = this.projectFused(x, K, b, fused ? (this.activationName as FusedActivation) : 'linear');
        return fused ? y : this.activationFn.apply(y);
      }
      let z = this.project(x, K);
      if (b) z = tf.add(z, b);
      const { spec, A, B } = adapter;
      const xa = training && spec.dropout > 0 && this.adapterDropout ? tf.dropout(x, spec.dropout, undefined, this.dropoutSeed(kwargs)) : x;
      // Scale the narrow [.., r] activation rather than the [.., out] one.
      const h = tf.mul(this.project(xa, A.read()), scaleOf(spec));
      z = tf.add(z, lastAxisMatMul(h, B.read()));
      return this.activationFn.apply(z);
    });
  }

  /**
   * The adapter dropout's seed: from the trainer's forward (its kwargs carry the batch's noise
   * key), so a recompute or a pipeline stage's backward draws the loss's mask and a seeded run
   * is reproducible. A direct call (model.fit, model.apply) draws unseeded, as tfjs's Dropout.
   */
  private dropoutSeed(kwargs: Kwargs): number | undefined {
    // The trainer's key for this layer, not its name: an unnamed base layer's name is numbered per process ('dense_Dense3').
    return hasNoiseIdentity(kwargs) ? noiseSeed(kwargs, `${layerNoiseName(this, kwargs)}/${this.activeName}/dropout`) : undefined;
  }

  // ---------------------------------------------------------------- adapters

  get kernel(): tf.LayerVariable {
    if (!this.kernelVar) throw stateError(`layer '${this.name}' is not built yet; call the model once or build it first.`);
    return this.kernelVar;
  }

  get bias(): tf.LayerVariable | null {
    return this.biasVar;
  }

  /** [fan-in, fan-out] of the kernel seen as a matrix (conv kernels: kh*kw*in x out). */
  get fans(): [number, number] {
    const s = this.kernel.shape as number[];
    return [s.slice(0, -1).reduce((a, b) => a * b, 1), s[s.length - 1]];
  }

  get adapterNames(): string[] {
    return this.built ? [...this.adapters.keys()] : Object.keys(this.initialAdapters);
  }

  get activeAdapter(): string | null {
    return this.activeName;
  }

  get isMerged(): boolean {
    return this.mergedFlag;
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  spec(name: string): AdapterSpec {
    return this.adapter(name).spec;
  }

  adapterWeights(name: string): { A: tf.LayerVariable; B: tf.LayerVariable } {
    const { A, B } = this.adapter(name);
    return { A, B };
  }

  /** Add a new adapter (its update A B starts at 0); it becomes trainable only when active. */
  addAdapter(name: string, spec: AdapterSpec, seed?: number): void {
    checkAdapterName(name);
    if (this.adapters.has(name)) throw configError(`layer '${this.name}' already has an adapter named '${name}'.`);
    this.createAdapter(name, spec, seed);
  }

  /** Switch the adapter used by the forward pass (null: base layer only). */
  setActiveAdapter(name: string | null): void {
    if (name !== null) this.adapter(name);
    if (this.mergedFlag) throw stateError(`layer '${this.name}' has adapter '${this.activeName}' merged; call unmerge() before switching adapters.`);
    this.activeName = name;
    this.syncFlags();
  }

  /** Only the active adapter trains (and nothing while the layer is frozen). */
  override get trainableWeights(): tf.LayerVariable[] {
    const a = this.trainable && this.activeName !== null ? this.adapters.get(this.activeName) : undefined;
    return a ? [a.A, a.B] : [];
  }

  override set trainableWeights(_weights: tf.LayerVariable[]) {
    throw stateError(`the weights of LoRA layer '${this.name}' are managed by the layer; use setActiveAdapter.`);
  }

  override get nonTrainableWeights(): tf.LayerVariable[] {
    const training = new Set(this.trainableWeights);
    const all = [this.kernelVar, this.biasVar, ...[...this.adapters.values()].flatMap((a) => [a.A, a.B])];
    return all.filter((w): w is tf.LayerVariable => w !== null && !training.has(w));
  }

  override set nonTrainableWeights(_weights: tf.LayerVariable[]) {
    throw stateError(`the weights of LoRA layer '${this.name}' are managed by the layer; use setActiveAdapter.`);
  }

  override get trainable(): boolean {
    return super.trainable;
  }

  override set trainable(value: boolean) {
    super.trainable = value;
    if (this.adapters) this.syncFlags();
  }

  /** Delta = s * reshape(A) B, shaped like the kernel. */
  deltaKernel(name: string): tf.Tensor {
    const { spec, A, B } = this.adapter(name);
    return tf.tidy(() => {
      const a = A.read();
      const AB = tf.matMul(tf.reshape(a, [-1, spec.rank]), B.read());
      return tf.mul(tf.reshape(AB, this.kernel.shape as number[]), scaleOf(spec));
    });
  }

  /** The kernel the layer effectively applies now (K, K + Delta, or the merged K). */
  effectiveKernel(): tf.Tensor {
    if (this.mergedFlag || this.activeName === null) return tf.clone(this.kernel.read());
    const name = this.activeName;
    return tf.tidy(() => tf.add(this.kernel.read(), this.deltaKernel(name)));
  }

  /**
   * The kernel after merging (or unmerging) the active adapter, without changing
   * anything: model-level merge computes and checks every layer's before committing.
   */
  prepareKernel(merge: boolean): tf.Tensor {
    if (this.activeName === null) throw stateError(`layer '${this.name}' has no active adapter to ${merge ? 'merge' : 'unmerge'}.`);
    if (merge && this.mergedFlag) throw stateError(`layer '${this.name}': adapter '${this.activeName}' is already merged; call unmerge() first.`);
    if (!merge && !this.mergedFlag) throw stateError(`layer '${this.name}': adapter '${this.activeName}' is not merged; nothing to unmerge.`);
    const name = this.activeName;
    if (!merge) {
      const restored = this.kept?.restored(this.kernel.read() as tf.Variable);
      if (restored) return restored;
    }
    return tf.tidy(() => (merge ? tf.add : tf.sub)(this.kernel.read(), this.deltaKernel(name)));
  }

  /** Install a kernel from `prepareKernel` and record the new merge state. */
  commitKernel(kernel: tf.Tensor, merged: boolean): void {
    if (merged) {
      this.kept = KeptWeight.write(this.kernel.read() as tf.Variable, kernel, (t) => this.kernel.write(t));
    } else {
      this.kernel.write(kernel);
      this.kept?.dispose();
      this.kept = undefined;
    }
    this.mergedFlag = merged;
  }

  protected override disposeWeights(): number {
    this.kept?.dispose();
    this.kept = undefined;
    return super.disposeWeights();
  }

  override getConfig(): tf.serialization.ConfigDict {
    const lora: LoraLayerState = {
      adapters: Object.fromEntries(this.adapterNames.map((n) => [n, { ...(this.built ? this.spec(n) : this.initialAdapters[n]) }])),
      active: this.activeName,
      merged: this.mergedFlag,
      seed: this.seed,
    };
    return { ...this.baseConfig, ...super.getConfig(), lora: lora as unknown as tf.serialization.ConfigDictValue };
  }

  private adapter(name: string): Adapter {
    const a = this.adapters.get(name);
    if (!a) throw configError(`layer '${this.name}' has no adapter '${name}' (it has: ${this.adapterNames.join(', ') || 'none'}).`);
    return a;
  }

  private createAdapter(name: string, spec: AdapterSpec, seed: number | undefined): void {
    const [fanIn, fanOut] = this.fans;
    const r = spec.rank;
    if (r > Math.min(fanIn, fanOut)) {
      throw configError(`rank ${r} exceeds min(fan-in, fan-out) = min(${fanIn}, ${fanOut}) of layer '${this.name}'; a rank this high cannot be low-rank. Use rank <= ${Math.min(fanIn, fanOut)} or exclude the layer.`);
    }
    const kShape = this.kernel.shape as number[];
    const init = this.adapterInitializers(spec, fanIn, seed);
    // Added as non-trainable: which weights train is decided by the getters below, not
    // by tfjs' flags (a container's `trainable` setter resets the flags of every weight
    // a layer registered as trainable).
    const A = this.addWeight(this.weightName(`lora_A.${name}`), [...kShape.slice(0, -1), r], 'float32', init.A, undefined, false);
    const B = this.addWeight(this.weightName(`lora_B.${name}`), [r, fanOut], 'float32', init.B, undefined, false);
    this.adapters.set(name, { spec, A, B });
    this.syncFlags();
  }

  /**
   * How a new adapter starts, PEFT's way for Dense and Conv2D: A kaiming-uniform
   * U(-1/sqrt(fanIn), 1/sqrt(fanIn)) or gaussian N(0, (1/r)^2), B = 0, so A B = 0.
   */
  protected adapterInitializers(spec: AdapterSpec, fanIn: number, seed: number | undefined): AdapterInit {
    const bound = 1 / Math.sqrt(fanIn);
    return {
      A: spec.init === 'kaiming' ? tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed }) : tf.initializers.randomNormal({ mean: 0, stddev: 1 / spec.rank, seed }),
      B: tf.initializers.zeros(),
    };
  }

  /** Variable flags follow the active adapter, so raw tf.variableGrads(f) agrees with trainableWeights. */
  private syncFlags(): void {
    for (const [n, { A, B }] of this.adapters) A.trainable = B.trainable = this.trainable && n === this.activeName;
  }

  /** During build tfjs scopes weight names by the layer; afterwards we add the scope ourselves. */
  private weightName(local: string): string {
    if (this.building) return local;
    const k = this.kernel.originalName;
    return k.slice(0, k.length - this.kernelWeightName.length) + local;
  }
}

/** h [..., r] times B [r, out] over the last axis. */
export function lastAxisMatMul(h: tf.Tensor, B: tf.Tensor): tf.Tensor {
  if (h.rank === 2) return tf.matMul(h, B);
  const lead = h.shape.slice(0, -1);
  const y = tf.matMul(tf.reshape(h, [-1, h.shape[h.rank - 1]]), B);
  return tf.reshape(y, [...lead, B.shape[1] as number]);
}

/** A tensor that is a kernel's [fan-in, fan-out] matrix view. */
export function asMatrix(kernel: tf.Tensor): tf.Tensor2D {
  return tf.reshape(kernel, [-1, kernel.shape[kernel.rank - 1]]) as tf.Tensor2D;
}
