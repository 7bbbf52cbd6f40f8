import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';

/**
 * How a segment's list of streams maps to the slots its updates act on. Linear and
 * invertible, so the same map splits outputs and gradients, and merges inputs and their
 * gradients.
 */
export interface SlotLayout {
  split(streams: readonly tf.Tensor[]): tf.Tensor[];
  merge(slots: readonly tf.Tensor[]): tf.Tensor[];
  /** The stream slot `slot` belongs to. */
  streamOf(slot: number): number;
  /** The slots of stream `stream`. */
  slotsOf(stream: number): number[];
}

/** Each stream is one slot (RevSilo). */
export const streamSlots: SlotLayout = {
  split: (streams) => [...streams],
  merge: (slots) => [...slots],
  streamOf: (slot) => slot,
  slotsOf: (stream) => [stream],
};

/**
 * The streams at `coupled` indices split into two channel halves (first half, second
 * half: two slots), the others one slot each (carried through unchanged). The halves of
 * stream `i` are slots `first(i)` and `first(i) + 1`.
 */
export class ChannelHalves implements SlotLayout {
  private readonly coupled: Set<number>;

  constructor(
    private readonly segment: string,
    coupled: readonly number[],
  ) {
    this.coupled = new Set(coupled);
  }

  /** The slot of stream `i`'s first half (or of the whole stream). */
  first(i: number): number {
    let slot = 0;
    for (let k = 0; k < i; k++) slot += this.coupled.has(k) ? 2 : 1;
    return slot;
  }

  streamOf(slot: number): number {
    for (let stream = 0, end = 0; ; stream++) {
      end += this.coupled.has(stream) ? 2 : 1;
      if (slot < end) return stream;
    }
  }

  slotsOf(stream: number): number[] {
    const first = this.first(stream);
    return this.coupled.has(stream) ? [first, first + 1] : [first];
  }

  split(streams: readonly tf.Tensor[]): tf.Tensor[] {
    return streams.flatMap((x, i) => {
      if (!this.coupled.has(i)) return [x];
      const c = x.shape[x.rank - 1];
      if (c % 2 !== 0) {
        throw new TapfitError(
          ErrorCodes.SHAPE,
          `segment '${this.segment}': stream ${i} has ${c} channels ([${x.shape}]), but a coupling splits the channels into two equal halves; use an even channel count (RevBiFPN uses multiples of 16).`,
        );
      }
      // As [2, rows, C/2] halves: wasm's Split and Slice take a slow generic path on
      // non-contiguous parts of 4-D and 5-D tensors (3x slower even on [rows, C]).
      const halves = tf.unstack(tf.transpose(tf.reshape(x, [-1, 2, c / 2]), [1, 0, 2]));
      return halves.map((half) => tf.reshape(half, [...x.shape.slice(0, -1), c / 2]));
    });
  }

  merge(slots: readonly tf.Tensor[]): tf.Tensor[] {
    const out: tf.Tensor[] = [];
    let s = 0;
    for (let i = 0; s < slots.length; i++) {
      if (this.coupled.has(i)) {
        const [a, b] = [slots[s], slots[s + 1]];
        const half = a.shape[a.rank - 1];
        const both = tf.stack([tf.reshape(a, [-1, half]), tf.reshape(b, [-1, half])]);
        out.push(tf.reshape(tf.transpose(both, [1, 0, 2]), [...a.shape.slice(0, -1), 2 * half]));
        s += 2;
      } else {
        out.push(slots[s]);
        s += 1;
      }
    }
    return out;
  }
}
