import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';

/** Identifies the base model an adapter was trained on. */
export interface BaseFingerprint {
  /** sha256 of `layers`. */
  readonly structureHash: string;
  /** Every leaf layer with its base class and base weight shapes (LoRA layers as the layer they wrap); every base variable of a segment model. */
  readonly layers: { path: string; className: string; shapes: number[][] }[];
  /**
   * Up to SAMPLE values, at evenly spaced positions, of each base weight training leaves
   * alone, by weight path: every weight but modulesToSave (stored in full) and running
   * statistics (weights that were not trainable before LoRA, stored in full too). Older
   * files hold only the adapted kernels, by layer path; a load compares what the file holds.
   */
  readonly samples: Record<string, number[]>;
}

const SAMPLE = 64;

/** A fingerprint of `layers`, with `samples` of each tensor in `sampled` named by `samplePaths`. */
export function makeFingerprint(layers: BaseFingerprint['layers'], sampled: ReadonlyMap<string, tf.Tensor>, samplePaths: readonly string[]): BaseFingerprint {
  const paths = samplePaths.filter((p) => sampled.has(p));
  const values = sampleAll(paths.map((p) => sampled.get(p)!));
  const samples: Record<string, number[]> = Object.fromEntries(paths.map((p, i) => [p, values[i]]));
  return { structureHash: createHash('sha256').update(JSON.stringify(layers)).digest('hex'), layers, samples };
}

/** Up to SAMPLE values of each tensor at evenly spaced flat positions, read back in one sync. */
function sampleAll(tensors: readonly tf.Tensor[]): number[][] {
  if (tensors.length === 0) return [];
  const counts = tensors.map((t) => Math.min(SAMPLE, t.size));
  const flat = tf.tidy(() => {
    const picks = tensors.map((t, k) => {
      const idx = Array.from({ length: counts[k] }, (_, i) => Math.floor((i * t.size) / counts[k]));
      return tf.gather(tf.reshape(tf.cast(t, 'float32'), [-1]), idx);
    });
    return Array.from(tf.concat(picks).dataSync());
  });
  let at = 0;
  return counts.map((n) => flat.slice(at, (at += n)));
}

/**
 * Why `actual` is not the base `expected` was taken from, or null when it is. Sampled
 * values may differ by float rounding (a merge/unmerge round trip) but no more.
 */
export function fingerprintMismatch(expected: BaseFingerprint, actual: BaseFingerprint): string | null {
  if (expected.structureHash !== actual.structureHash) {
    const have = new Map(actual.layers.map((l) => [l.path, l]));
    const diffs: string[] = [];
    for (const l of expected.layers) {
      const a = have.get(l.path);
      if (!a) diffs.push(`layer '${l.path}' (${l.className}) is missing`);
      else if (a.className !== l.className || JSON.stringify(a.shapes) !== JSON.stringify(l.shapes)) {
        diffs.push(`layer '${l.path}' is ${a.className} ${JSON.stringify(a.shapes)}, expected ${l.className} ${JSON.stringify(l.shapes)}`);
      }
    }
    const known = new Set(expected.layers.map((l) => l.path));
    for (const l of actual.layers) if (!known.has(l.path)) diffs.push(`layer '${l.path}' (${l.className}) is extra`);
    return `the model's structure differs from the adapter's base: ${diffs.slice(0, 5).join('; ') || 'layer order differs'}${diffs.length > 5 ? `; and ${diffs.length - 5} more` : ''}`;
  }
  for (const [path, want] of Object.entries(expected.samples)) {
    const got = actual.samples[path];
    if (!got || got.length !== want.length) return `base weight '${path}' was not sampled in this model`;
    const scale = Math.max(1e-6, ...want.map(Math.abs));
    const worst = Math.max(...want.map((w, i) => Math.abs(w - got[i])));
    if (worst > 1e-4 * scale) {
      return `the base weights differ: '${path}' differs by up to ${worst.toExponential(2)} (tolerance ${(1e-4 * scale).toExponential(2)}); the adapter was trained on another base model`;
    }
  }
  return null;
}
