import type * as tf from '@tensorflow/tfjs';
import { type AdapterFile, checkModelKind, readAdapter } from '../common/adapter-file';
import { formatPlan, type LoraPlan } from '../common/lora-plan';
import { exactPath } from '../common/selectors';
import { loadAdapter, type LoadAdapterOptions, saveAdapter } from './adapter-io';
import { activeAdapterOf, addAdapter, type AddAdapterOptions, adapterNamesOf, isMerged, requireLoraLayers, setActiveAdapter } from './adapters';
import { loraLayersOf } from './catalog';
import { injectLora } from './inject';
import type { LoraLayer } from './lora-layer';
import { mergeAdapter, unmergeAdapter } from './merge';
import { syncTrainableFlags } from './trainable-flags';
import { unloadLora } from './unload';

/**
 * A handle on a model with LoRA layers. All state lives in the layers themselves, so a
 * model reloaded with tf.loadLayersModel can be wrapped again with `LoraModel.from`.
 */
export class LoraModel {
  constructor(
    /** The tfjs-layers model to train and run. */
    readonly model: tf.LayersModel,
    /** What applyLora did (null for a handle made with `from`). */
    readonly plan: LoraPlan | null = null,
  ) {}

  static from(model: tf.LayersModel): LoraModel {
    requireLoraLayers(model, 'LoraModel.from');
    syncTrainableFlags(model);
    return new LoraModel(model);
  }

  /**
   * Rebuild a saved adapter on its base model: applies LoRA to the same layers with the
   * saved spec, then loads the weights (checking the base fingerprint).
   */
  static async load(base: tf.LayersModel, dir: string): Promise<LoraModel> {
    const { file } = await readAdapter(dir);
    checkModelKind(file, dir, 'layers');
    // Exact paths: a saved layer named like a keyword ('output') must not be read as one.
    const injected = injectLora(base, { ...file.spec, targets: file.targets.map(exactPath), modulesToSave: file.modulesToSave.map(exactPath), adapterName: file.adapter });
    const lora = new LoraModel(injected.model, injected.plan);
    try {
      await lora.loadAdapter(dir);
    } catch (err) {
      lora.dispose();
      throw err;
    }
    return lora;
  }

  get layers(): LoraLayer[] {
    return loraLayersOf(this.model);
  }

  get adapters(): string[] {
    return adapterNamesOf(this.model);
  }

  get activeAdapter(): string | null {
    return activeAdapterOf(this.model);
  }

  get isMerged(): boolean {
    return isMerged(this.model);
  }

  /** Parameters that receive gradients (adapters of the active adapter, plus modulesToSave). */
  get trainableParams(): number {
    return this.model.trainableWeights.reduce((a, w) => a + w.shape.reduce((x: number, y) => x * (y ?? 1), 1), 0);
  }

  setActiveAdapter(name: string | null): this {
    setActiveAdapter(this.model, name);
    return this;
  }

  /** Add another adapter to the wrapped layers (all, or `targets`); returns the layer paths. */
  addAdapter(name: string, opts: AddAdapterOptions): string[] {
    return addAdapter(this.model, name, opts);
  }

  merge(): this {
    mergeAdapter(this.model);
    return this;
  }

  unmerge(): this {
    unmergeAdapter(this.model);
    return this;
  }

  /** A plain model with the active adapter folded in (this model is unchanged). */
  unload(): tf.LayersModel {
    return unloadLora(this.model);
  }

  saveAdapter(dir: string, opts: { adapter?: string } = {}): Promise<AdapterFile> {
    return saveAdapter(this.model, dir, opts);
  }

  loadAdapter(dir: string, opts: LoadAdapterOptions = {}): Promise<string> {
    return loadAdapter(this.model, dir, opts);
  }

  describe(): string {
    return this.plan ? formatPlan(this.plan) : `LoRA model '${this.model.name}': adapters ${this.adapters.join(', ')}`;
  }

  dispose(): void {
    this.model.dispose();
  }
}
