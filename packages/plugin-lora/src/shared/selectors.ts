import { KEYWORDS, type LayerSelector } from './config';
import type { LayerEntry } from '../layers/catalog';

/** How a selector reads in messages and reports. */
export function describeSelector(s: LayerSelector): string {
  return s instanceof RegExp ? String(s) : `'${s}'`;
}

/**
 * Does selector `s` pick layer `e`? Exact strings and RegExps are tested against the
 * layer path ('fc1', or 'encoder/fc1' inside a nested model); '*suffix' matches paths
 * ending in `suffix`; keywords pick by class.
 */
export function selects(s: LayerSelector, e: LayerEntry): boolean {
  if (s instanceof RegExp) return new RegExp(s.source, s.flags.replace(/[gy]/g, '')).test(e.path);
  switch (s) {
    case 'all-dense':
      return e.className === 'Dense';
    case 'all-linear':
      return e.className === 'Dense' && !e.isHead;
    case 'all-conv2d':
      return e.className === 'Conv2D';
    case 'all-embedding':
      return e.className === 'Embedding';
  }
  if (s.startsWith('*')) return e.path.endsWith(s.slice(1));
  return e.path === s;
}

export function checkSelector(s: unknown, option: string): LayerSelector {
  if (s instanceof RegExp) return s;
  if (typeof s !== 'string' || s.length === 0 || s === '*') {
    throw new Error(`option '${option}': a selector must be a layer name, '*suffix', a RegExp or one of ${KEYWORDS.join(', ')} (got ${JSON.stringify(s)}).`);
  }
  return s;
}

/** Near misses for an unmatched selector, to put in the error message. */
export function hintFor(s: LayerSelector, entries: readonly Pick<LayerEntry, 'path'>[]): string {
  if (typeof s !== 'string' || s.startsWith('*') || (KEYWORDS as readonly string[]).includes(s)) return '';
  const ending = entries.filter((e) => e.path.endsWith(s)).map((e) => e.path);
  if (ending.length) return ` Did you mean the suffix selector '*${s}' (matches ${ending.join(', ')})?`;
  const lower = entries.filter((e) => e.path.toLowerCase() === s.toLowerCase()).map((e) => e.path);
  if (lower.length) return ` Names are case-sensitive: did you mean '${lower[0]}'?`;
  return '';
}
