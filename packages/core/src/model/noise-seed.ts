/**
 * The rule for randomness inside a training forward (core README, "Randomness and
 * reproducibility"): every mask or noise draw is a pure function of (the trainer's seed,
 * which training batch this is, the drawing layer's name, the draw's index in that layer).
 * No generator state is kept between calls, so a replay of the forward (a recompute, a
 * pipeline stage's backward after later forwards) redraws the same noise, a resumed run
 * draws what the straight run drew, and two processes with the same seed agree.
 */

/** What `noiseSeed` reads: a `SegmentContext`, or the kwargs the layers adapter passes to `call()`. */
export interface NoiseSource {
  /** `SegmentContext.noiseKey`: the batch's key, when the forward has one. */
  readonly noiseKey?: number | undefined;
  /** Fallback identity of the forward when there is no key (a hand-made context). */
  readonly step?: number | undefined;
}

/**
 * The key of one training forward: mixes the trainer's seed with the batch's serial number
 * (the trainer's count of training steps run so far, applied or skipped; a pipeline's
 * micro-batch index). Host arithmetic only: no tensors, no device read-back.
 */
export function noiseKey(seed: number, serial: number): number {
  return mix(mix(0x9e3779b9 ^ hashNumber(seed)) ^ hashNumber(serial));
}

/**
 * The seed a layer named `name` gives its `draw`-th random op in this forward (tfjs's
 * `tf.dropout(x, rate, noiseShape, seed)`, `tf.randomUniform(..., seed)`): a positive
 * 31-bit integer (never 0, which some tfjs ops read as "no seed"). Without a key, the
 * context's `step` stands for the batch (seed 0), so a context made by hand still replays.
 */
export function noiseSeed(source: NoiseSource, name: string, draw = 0): number {
  let h = source.noiseKey ?? noiseKey(0, source.step ?? 0);
  for (let i = 0; i < name.length; i++) h = mix(h ^ name.charCodeAt(i));
  h = mix(h ^ hashNumber(draw));
  return (h & 0x7fffffff) || 1;
}

/** Whether a layer's call kwargs (or a context) identify the forward, so noise can be seeded from them. */
export function hasNoiseIdentity(source: unknown): source is NoiseSource {
  const s = source as NoiseSource | undefined;
  return typeof s?.noiseKey === 'number' || typeof s?.step === 'number';
}

/** murmur3's 32-bit finaliser: every input bit moves every output bit. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A number's 32-bit hash: integers (seeds, serials) exactly, beyond 2^32 too. */
function hashNumber(n: number): number {
  const lo = n >>> 0;
  const hi = Math.floor(n / 4294967296) >>> 0;
  return mix(lo ^ mix(hi + 0x632be5ab));
}
