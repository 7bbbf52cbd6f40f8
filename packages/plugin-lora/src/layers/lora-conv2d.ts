import * as tf from '@tensorflow/tfjs';
import { type FusedActivation, LoraLayer, type Shape } from './lora-layer';

type Pair = [number, number];
const pair = (v: unknown, name: string): Pair => {
  const a = Array.isArray(v) ? v : [v, v];
  if (a.length !== 2 || !a.every((n) => Number.isInteger(n))) throw new Error(`LoraConv2D: '${name}' must be a number or a pair (got ${JSON.stringify(v)}).`);
  return a as Pair;
};

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
      throw new Error(`LoraConv2D '${this.name}': only dataFormat 'channelsLast' is supported (got '${String(c.dataFormat)}').`);
    }
    this.kernelSize = pair(c.kernelSize, 'kernelSize');
    this.strides = pair(c.strides ?? 1, 'strides');
    this.dilations = pair(c.dilationRate ?? 1, 'dilationRate');
    const padding = c.padding ?? 'valid';
    if (padding !== 'same' && padding !== 'valid') throw new Error(`LoraConv2D '${this.name}': padding '${String(padding)}' is not supported.`);
    this.padding = padding;
  }

  protected kernelShape(inputShape: Shape): number[] {
    const inDim = inputShape[inputShape.length - 1];
    if (inDim == null) throw new Error(`LoraConv2D '${this.name}': the channel dimension must be known.`);
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
