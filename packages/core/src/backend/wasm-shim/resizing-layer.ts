import * as tf from '@tensorflow/tfjs';
import type { Overrides } from './overrides';

type Shape = Array<number | null>;

interface ResizingLayer {
  computeOutputShape(inputShape: Shape | Shape[]): Shape;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: object): tf.Tensor;
}

/**
 * tfjs-layers' Resizing layer inside a model. tfjs-layers 4.22:
 * - computes its output shape as [height, width, channels] from the input shape read as
 *   unbatched, so on a model's batched input [null, 6, 6, 3] it reported [8, 10, 6] and
 *   the next layer was built for the wrong shape (a GlobalAveragePooling2D refused it:
 *   "expected ndim=4, found ndim=3");
 * - hands its inputs to the resize op as they come, and a model passes a list of one
 *   tensor ("Invalid typed array length" on wasm).
 * The leading axes are kept, and the one tensor is taken out of its list.
 */
export function installResizingLayerFix(o: Overrides): void {
  const proto = Object.getPrototypeOf(tf.layers.resizing({ height: 1, width: 1 })) as ResizingLayer;
  o.replace(proto, 'computeOutputShape', function (this: { height: number; width: number }, inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    return [...shape.slice(0, -3), this.height, this.width, shape[shape.length - 1]];
  });
  const call = proto.call;
  o.replace(proto, 'call', function (this: ResizingLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: object): tf.Tensor {
    return call.call(this, Array.isArray(inputs) && inputs.length === 1 ? inputs[0] : inputs, kwargs);
  });
}
