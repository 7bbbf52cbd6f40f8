import type * as tf from '@tensorflow/tfjs';
import type { Segment } from '@tapfit/core';

/**
 * A model piece: a core `Segment` (stream list in, stream list out; reversible ones also
 * have `inverse` and `backward`) that also knows its output shapes, so a tfjs-layers
 * layer can wrap it (inference, `model.save`).
 */
export interface Module extends Segment {
  /** Output shapes (batch included) for input shapes. */
  outputShapes(inputShapes: readonly tf.Shape[]): tf.Shape[];
  /** Frees state kept between forwards (normalisation statistics kept for replay). */
  dispose?(): void;
}
