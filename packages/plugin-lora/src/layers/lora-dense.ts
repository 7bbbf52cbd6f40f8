import * as tf from '@tensorflow/tfjs';
import { shapeError } from '../common/errors';
import { type FusedActivation, LoraLayer, type Shape } from './lora-layer';

/** LoRA around a Dense layer: kernel [in, out], A [in, r], B [r, out]. */
export class LoraDense extends LoraLayer {
  static readonly className = 'LoraDense';
  readonly baseClassName = 'Dense';

  protected kernelShape(inputShape: Shape): number[] {
    const inDim = inputShape[inputShape.length - 1];
    if (inDim == null) {
      throw shapeError(`LoraDense '${this.name}': the last dimension of input shape ${JSON.stringify(inputShape)} is unknown; give the model an input shape whose last axis is known.`);
    }
    return [inDim, this.baseConfig.units as number];
  }

  protected useBias(): boolean {
    return this.baseConfig.useBias !== false;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = [...((Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape)];
    s[s.length - 1] = this.baseConfig.units as number;
    return s;
  }

  protected project(x: tf.Tensor, W: tf.Tensor): tf.Tensor {
    return onLastAxis(x, W.shape[1] as number, (x2) => tf.matMul(x2, W));
  }

  protected projectFused(x: tf.Tensor, W: tf.Tensor, bias: tf.Tensor | null, activation: FusedActivation): tf.Tensor {
    return onLastAxis(x, W.shape[1] as number, (x2) => tf.fused.matMul({ a: x2 as tf.Tensor2D, b: W as tf.Tensor2D, bias: bias ?? undefined, activation }));
  }
}

/** Dense layers accept inputs of rank > 2: fold the leading axes into the batch. */
function onLastAxis(x: tf.Tensor, outDim: number, f: (x2: tf.Tensor2D) => tf.Tensor): tf.Tensor {
  if (x.rank === 2) return f(x as tf.Tensor2D);
  const lead = x.shape.slice(0, -1);
  const y = f(tf.reshape(x, [-1, x.shape[x.rank - 1]]) as tf.Tensor2D);
  return tf.reshape(y, [...lead, outDim]);
}

tf.serialization.registerClass(LoraDense);
