import { type LayerSelector, matchesPath } from '../common/selectors';
import type { VariableEntry } from './segment-catalog';

/**
 * Does selector `s` pick variable `e`? An exact string names the variable's path, its
 * tfjs name or its segment (all its variables); '*suffix' and RegExps test the path;
 * 'output' picks every variable of the output head segment, 'all-dense' every 2-D
 * variable and 'all-linear' all but the output head's.
 */
export function selectsVariable(s: LayerSelector, e: VariableEntry): boolean {
  switch (s) {
    case 'output':
      return e.isHead;
    case 'all-dense':
      return !e.unsupported;
    case 'all-linear':
      return !e.unsupported && !e.isHead;
    case 'all-conv2d':
    case 'all-embedding':
      return false; // segments carry no layer classes; see `keywordReason`
  }
  if (s instanceof RegExp || s.startsWith('*')) return matchesPath(s, e.path);
  return e.path === s || e.variable.name === s || e.segment === s;
}

/** Why a keyword matched nothing, where the generic 'matches no variable' would mislead. */
export function keywordReason(s: LayerSelector, entries: readonly VariableEntry[]): string | null {
  if (s === 'all-conv2d' || s === 'all-embedding') {
    return `cannot be used on a segment model: segments carry no layer classes. Name the 2-D variables (paths, segment names, '*suffix' or a RegExp), or use 'all-dense' / 'all-linear'.`;
  }
  const head = entries.find((e) => e.isHead && !e.unsupported);
  if (s === 'output' && !head) return `matches no variable: the output head is the last segment with a 2-D float32 weight, and this model has none.`;
  if (s === 'all-linear' && head) return `matches no variable: every 2-D variable is in the output head segment '${head.segment}', which 'all-linear' skips. Use 'all-dense' or name the variables.`;
  return null;
}
