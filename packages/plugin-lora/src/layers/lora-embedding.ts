import * as tf from '@tensorflow/tfjs';
import type { AdapterSpec } from '../common/config';
import { type AdapterInit, type FusedActivation, LoraLayer, type Shape } from './lora-layer';

/**
 * LoRA around an Embedding: table E [vocab, dim], A [vocab, r], B [r, dim]; the
 * adapter row of id i is A[i] B. No dropout (the input is ids), no bias, no activation.
 * Initialised as PEFT's lora_embedding_A / _B: A = 0 and B ~ N(0, 1), whatever `init`.
 */
export class LoraEmbedding extends LoraLayer {
  static readonly className = 'LoraEmbedding';
  readonly baseClassName = 'Embedding';
  protected override readonly kernelWeightName = 'embeddings';
  protected override readonly adapterDropout = false;
  private readonly template: tf.layers.Layer;

  constructor(config: ConstructorParameters<typeof LoraLayer>[0]) {
    super(config);
    // An unbuilt twin answers shape and mask questions exactly as Embedding does.
    this.template = tf.layers.embedding(this.baseConfig as unknown as Parameters<typeof tf.layers.embedding>[0]);
    this.supportsMasking = this.baseConfig.maskZero === true;
  }

  // Like Embedding: ids may come in any rank.
  protected override warnOnIncompatibleInputShape(): void {}

  // PEFT's reset_lora_parameters: the update A B starts at 0 through A, not B. A
  // U(+-1/sqrt(vocab)) would be tiny for a large vocabulary and the adapter would start
  // slowly: with B = 0 only B gets a gradient, and that gradient is scaled by A.
  protected override adapterInitializers(_spec: AdapterSpec, _fanIn: number, seed: number | undefined): AdapterInit {
    return { A: tf.initializers.zeros(), B: tf.initializers.randomNormal({ mean: 0, stddev: 1, seed }) };
  }

  protected kernelShape(): number[] {
    return [this.baseConfig.inputDim as number, this.baseConfig.outputDim as number];
  }

  protected useBias(): boolean {
    return false;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return this.template.computeOutputShape(inputShape);
  }

  override computeMask(inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    return this.template.computeMask(inputs, mask);
  }

  protected project(x: tf.Tensor, W: tf.Tensor): tf.Tensor {
    const ids = x.dtype === 'int32' ? x : tf.cast(x, 'int32');
    const rows = tf.gather(W, tf.reshape(ids, [ids.size]));
    return tf.reshape(rows, [...x.shape, W.shape[1] as number]);
  }

  protected projectFused(x: tf.Tensor, W: tf.Tensor, _bias: tf.Tensor | null, _activation: FusedActivation): tf.Tensor {
    return this.project(x, W);
  }
}

tf.serialization.registerClass(LoraEmbedding);
