import * as tf from '@tensorflow/tfjs';
import { LoraLayer } from './lora-layer';

/** The layer kinds LoRA can wrap, and their LoRA classes. */
export const ADAPTABLE = { Dense: 'LoraDense', Conv2D: 'LoraConv2D', Embedding: 'LoraEmbedding' } as const;
export type AdaptableKind = keyof typeof ADAPTABLE;

/** One leaf layer of a model, as selectors and reports see it. */
export interface LayerEntry {
  /** The layer name, prefixed by enclosing model names for nested models ('encoder/fc1'). */
  readonly path: string;
  readonly layer: tf.layers.Layer;
  readonly className: string;
  /** Set when LoRA can wrap this layer. */
  readonly kind: AdaptableKind | null;
  /** Why an adaptable class still cannot be wrapped (e.g. channelsFirst Conv2D). */
  readonly unsupported?: string;
  /** Kernel shape for adaptable layers. */
  readonly kernelShape: number[] | null;
  readonly params: number;
  /**
   * Produces a model output, possibly through weightless layers (softmax, dropout) or
   * as the last layer of a nested model: PEFT's "output head", selected by 'output'.
   */
  readonly isHead: boolean;
}

export function isContainer(layer: tf.layers.Layer): layer is tf.LayersModel {
  return layer instanceof tf.LayersModel;
}

/** Every leaf layer (input layers skipped), nested models flattened with path names. */
export function catalog(model: tf.LayersModel): LayerEntry[] {
  const heads = outputHeads(model);
  const out: LayerEntry[] = [];
  const walk = (container: tf.LayersModel, prefix: string): void => {
    for (const layer of container.layers) {
      const className = layer.getClassName();
      if (className === 'InputLayer') continue;
      const path = prefix + layer.name;
      if (isContainer(layer)) {
        walk(layer, `${path}/`);
        continue;
      }
      const kind = className in ADAPTABLE ? (className as AdaptableKind) : null;
      const kernel = kind ? layer.weights.find((w) => /(^|\/)(kernel|embeddings)$/.test(w.originalName)) : undefined;
      const config = layer.getConfig();
      const unsupported =
        kind === 'Conv2D' && (config.dataFormat ?? 'channelsLast') !== 'channelsLast'
          ? `dataFormat '${String(config.dataFormat)}' (LoRA supports channelsLast Conv2D)`
          : kind && !kernel
            ? 'the layer is not built'
            : undefined;
      out.push({
        path,
        layer,
        className,
        kind,
        unsupported,
        kernelShape: kernel ? (kernel.shape as number[]) : null,
        params: layer.countParams(),
        isHead: heads.has(layer),
      });
    }
  };
  walk(model, '');
  return out;
}

/** Fan-in (all kernel axes but the last) and fan-out of a kernel shape. */
export function fansOf(kernelShape: number[]): [number, number] {
  return [kernelShape.slice(0, -1).reduce((a, b) => a * b, 1), kernelShape[kernelShape.length - 1]];
}

/**
 * The weighted leaf layers that produce the model's outputs, looking back through
 * weightless layers (softmax, dropout, reshape) and into nested models' own outputs.
 */
function outputHeads(model: tf.LayersModel): Set<tf.layers.Layer> {
  const heads = new Set<tf.layers.Layer>();
  for (const output of model.outputs ?? []) {
    let layer: tf.layers.Layer | undefined = output.sourceLayer as tf.layers.Layer;
    let nodeIndex = output.nodeIndex;
    for (let hops = 0; layer && hops < 64; hops++) {
      if (isContainer(layer)) {
        for (const h of outputHeads(layer)) heads.add(h);
        break;
      }
      if (layer.weights.length > 0) {
        heads.add(layer);
        break;
      }
      const node = layer.inboundNodes[nodeIndex];
      if (!node || node.inboundLayers.length !== 1) break;
      layer = node.inboundLayers[0] as tf.layers.Layer;
      nodeIndex = node.nodeIndices[0];
    }
  }
  return heads;
}

/** Every LoRA layer of a model, nested models included. */
export function loraLayersOf(model: tf.LayersModel): LoraLayer[] {
  const out: LoraLayer[] = [];
  const walk = (c: tf.LayersModel): void => {
    for (const l of c.layers) {
      if (l instanceof LoraLayer) out.push(l);
      else if (isContainer(l)) walk(l);
    }
  };
  walk(model);
  return out;
}

/** Leaf layers by path (same naming as `catalog`). */
export function layersByPath(model: tf.LayersModel): Map<string, tf.layers.Layer> {
  const out = new Map<string, tf.layers.Layer>();
  const walk = (c: tf.LayersModel, prefix: string): void => {
    for (const l of c.layers) {
      if (isContainer(l)) walk(l, `${prefix}${l.name}/`);
      else out.set(prefix + l.name, l);
    }
  };
  walk(model, '');
  return out;
}
