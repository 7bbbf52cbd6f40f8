import * as tf from '@tensorflow/tfjs';
import { configError, shapeError } from '../common/errors';
import { type FusedActivation, LoraLayer, type Shape } from './lora-layer';

type Pair = [number, number];

/**
 * LoRA around a channels-last Conv2D: kernel [kh, kw, in, out]; A is a conv with the
 * same geometry to r channels [kh, kw, in, r]; B is a 1x1 conv [r, out] (PEFT's Conv2d
 * LoRA). Delta = s * reshape(A, [kh*kw*in, r]) B, reshaped to the kernel.
 */
export class LoraConv2D extends LoraLayer {
  static readonly className = 'LoraConv2D';
  readonly baseClassName = 'Conv2D';
  private readonly kernelSize: Pair;
  private readonly strides: Pair;
  private readonly dilations: Pair;
  private readonly padding: 'same' | 'valid';

  constructor(config: ConstructorParameters<typeof LoraLayer>[0]) {
    super(config);
    const c = this.baseConfig;
    if ((c.dataFormat ?? 'channelsLast') !== 'channelsLast') {
      throw configError(`LoraConv2D '${this.name}': dataFormat '${String(c.dataFormat)}' is not supported; LoRA wraps channelsLast Conv2D only. Exclude the layer from 'targets' or build it channelsLast.`);
    }
    this.kernelSize = this.pair(c.kernelSize, 'kernelSize');
    this.strides = this.pair(c.strides ?? 1, 'strides');
    this.dilations = this.pair(c.dilationRate ?? 1, 'dilationRate');
    const padding = c.padding ?? 'valid';
    if (padding !== 'same' && padding !== 'valid') {
      throw configError(`LoraConv2D '${this.name}': padding '${String(padding)}' is not supported; LoRA wraps Conv2D with padding 'same' or 'valid'. Exclude the layer from 'targets'.`);
    }
    this.padding = padding;
  }

  /** A Conv2D config value given as one integer or a pair of them. */
  private pair(v: unknown, key: string): Pair {
    const a = Array.isArray(v) ? v : [v, v];
    if (a.length !== 2 || !a.every((n) => Number.isInteger(n))) {
      throw configError(`LoraConv2D '${this.name}': config '${key}' must be an integer or a pair of integers (got ${JSON.stringify(v)}); fix the wrapped Conv2D's config.`);
    }
    return a as Pair;
  }

  protected kernelShape(inputShape: Shape): number[] {
    const inDim = inputShape[inputShape.length - 1];
    if (inDim == null) {
      throw shapeError(`LoraConv2D '${this.name}': the channel dimension of input shape ${JSON.stringify(inputShape)} is unknown; give the model an input shape with a known channel count.`);
    }
    return [...this.kernelSize, inDim, this.baseConfig.filters as number];
  }

  protected useBias(): boolean {
    return this.baseConfig.useBias !== false;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const out = (n: number | null, i: 0 | 1): number | null => {
      if (n == null) return null;
      const k = (this.kernelSize[i] - 1) * this.dilations[i] + 1;
      return this.padding === 'same' ? Math.ceil(n / this.strides[i]) : Math.ceil((n - k + 1) / this.strides[i]);
    };
    return [s[0], out(s[1], 0), out(s[2], 1), this.baseConfig.filters as number];
  }

  protected project(x: tf.Tensor, W: tf.Tensor): tf.Tensor {
    return tf.conv2d(x as tf.Tensor4D, W as tf.Tensor4D, this.strides, this.padding, 'NHWC', this.dilations);
  }

  protected projectFused(x: tf.Tensor, W: tf.Tensor, bias: tf.Tensor | null, activation: FusedActivation): tf.Tensor {
    return tf.fused.conv2d({
      x: x as tf.Tensor4D,
      filter: W as tf.Tensor4D,
      strides: this.strides,
      pad: this.padding,
      dataFormat: 'NHWC',
      dilations: this.dilations,
      bias: bias ?? undefined,
      activation,
    });
  }
}

tf.serialization.registerClass(LoraConv2D);
