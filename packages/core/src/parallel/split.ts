/**
 * Sizes of the parts a batch of `n` samples is split into, as even as possible, larger
 * parts first (the main thread takes part 0): 65 in 2 gives [33, 32].
 */
export function partSizes(n: number, parts: number): number[] {
  const base = Math.floor(n / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < n % parts ? 1 : 0));
}

/**
 * The gradient of the whole batch's mean loss from the parts' gradients: each part's
 * mean weighted by its share of the samples, sum_k (n_k / n) g_k.
 */
export function partWeights(sizes: readonly number[]): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  return sizes.map((s) => s / n);
}
