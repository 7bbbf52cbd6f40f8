import type * as tf from '@tensorflow/tfjs';

/** Where each of the model's weights lies in the flat shared buffers (float32 elements). */
export class WeightLayout {
  readonly offsets: number[] = [];
  readonly total: number;

  constructor(readonly variables: readonly tf.Variable[]) {
    let at = 0;
    for (const v of variables) {
      this.offsets.push(at);
      at += v.size;
    }
    this.total = at;
  }

  /** Weight i's part of `flat`. */
  view(flat: Float32Array, i: number): Float32Array {
    return flat.subarray(this.offsets[i], this.offsets[i] + this.variables[i].size);
  }
}
