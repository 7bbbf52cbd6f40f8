import { configError } from './errors';

/**
 * A layer selector: an exact layer name (`'fc1'`), a suffix (`'*_proj'` matches every
 * name ending in `_proj`), a RegExp tested against the whole name, or a keyword:
 * `'output'` (the output heads: the weighted layers producing the model's outputs),
 * `'all-dense'` (every Dense), `'all-linear'` (every Dense except the output heads, like
 * PEFT's 'all-linear'), `'all-conv2d'` (every Conv2D), `'all-embedding'`. Keywords win
 * over layer names: match a layer named 'output' with /^output$/.
 */
export type LayerSelector = string | RegExp;

export const KEYWORDS = ['output', 'all-dense', 'all-linear', 'all-conv2d', 'all-embedding'] as const;

export function isKeyword(s: LayerSelector): boolean {
  return typeof s === 'string' && (KEYWORDS as readonly string[]).includes(s);
}

/** How a selector reads in messages and reports. */
export function describeSelector(s: LayerSelector): string {
  return s instanceof RegExp ? String(s) : `'${s}'`;
}

/**
 * Does a name selector (not a keyword) match `path`? RegExps are tested against the
 * whole path (`g`/`y` flags ignored), '*suffix' matches paths ending in `suffix`, any
 * other string is the path itself.
 */
export function matchesPath(s: LayerSelector, path: string): boolean {
  if (s instanceof RegExp) return new RegExp(s.source, s.flags.replace(/[gy]/g, '')).test(path);
  if (s.startsWith('*')) return path.endsWith(s.slice(1));
  return path === s;
}

/** A selector matching exactly `path` and nothing else, keyword or not (for paths read back from a file). */
export function exactPath(path: string): RegExp {
  return new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);
}

export function checkSelector(s: unknown, option: string): LayerSelector {
  if (s instanceof RegExp) return s;
  if (typeof s !== 'string' || s.length === 0 || s === '*') {
    throw configError(`option '${option}': a selector must be a layer name, '*suffix', a RegExp or one of ${KEYWORDS.join(', ')} (got ${JSON.stringify(s)}).`);
  }
  return s;
}

/** Near misses for an unmatched selector, to put in the error message. */
export function hintFor(s: LayerSelector, entries: readonly { path: string }[]): string {
  if (typeof s !== 'string' || s.startsWith('*') || isKeyword(s)) return '';
  const ending = entries.filter((e) => e.path.endsWith(s)).map((e) => e.path);
  if (ending.length) return ` Did you mean the suffix selector '*${s}' (matches ${ending.join(', ')})?`;
  const lower = entries.filter((e) => e.path.toLowerCase() === s.toLowerCase()).map((e) => e.path);
  if (lower.length) return ` Names are case-sensitive: did you mean '${lower[0]}'?`;
  return '';
}
