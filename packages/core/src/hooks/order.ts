import { ErrorCodes, TapfitError } from '../errors';

/**
 * Named stage bands (webpack's PROCESS_ASSETS_STAGE_* idea). Lower runs first; taps in
 * one band keep registration order unless `before`/`after` say otherwise.
 */
export const Stage = {
  FIRST: -3000,
  /** Prepare inputs: e.g. predicted weights, delayed gradients. */
  PREPARE: -2000,
  /** Change the quantity itself: e.g. gradient masks, noise. */
  TRANSFORM: -1000,
  DEFAULT: 0,
  /** Bound or check the result: e.g. clipping, finiteness guards. */
  GUARD: 1000,
  /** Observe only: logging, metrics, checkpoints. */
  REPORT: 2000,
  LAST: 3000,
} as const;

export interface TapOptions {
  /** Defaults to the plugin's name. Other taps refer to it in `before`/`after`. */
  name?: string | undefined;
  stage?: number | undefined;
  before?: string | readonly string[] | undefined;
  after?: string | readonly string[] | undefined;
}

export interface OrderedTap {
  readonly name: string;
  /** The plugin that registered it: `before`/`after` naming the plugin reach all its taps. */
  readonly plugin?: string;
  readonly stage: number;
  readonly before: readonly string[];
  readonly after: readonly string[];
  /** Registration index, the last tie-breaker. */
  readonly index: number;
}

/**
 * Orders one hook's taps: a topological sort of the before/after constraints that
 * picks, among the taps free to go next, the lowest (stage, registration index).
 * Constraints naming something unknown to the trainer are errors; constraints naming a
 * known plugin that does not tap this hook are vacuous.
 */
export function resolveOrder<T extends OrderedTap>(hook: string, taps: readonly T[], known: ReadonlySet<string>): T[] {
  const byName = new Map<string, T[]>();
  const add = (name: string, t: T): void => void byName.set(name, [...(byName.get(name) ?? []), t]);
  for (const t of taps) {
    add(t.name, t);
    if (t.plugin !== undefined && t.plugin !== t.name) add(t.plugin, t);
  }
  const succ = new Map<T, Set<T>>(taps.map((t) => [t, new Set<T>()]));
  const indegree = new Map<T, number>(taps.map((t) => [t, 0]));
  const edge = (from: T, to: T): void => {
    if (from === to || succ.get(from)!.has(to)) return;
    succ.get(from)!.add(to);
    indegree.set(to, indegree.get(to)! + 1);
  };
  for (const t of taps) {
    for (const [list, dir] of [[t.before, 'before'], [t.after, 'after']] as const) {
      for (const other of list) {
        if (!known.has(other)) {
          throw new TapfitError(
            ErrorCodes.ORDER_UNKNOWN,
            `hook '${hook}': tap '${t.name}' asks to run ${dir} '${other}', which is not a registered plugin or tap. ` +
              `Known: ${[...known].sort().join(', ') || '(none)'}. Fix the name or register '${other}' first.`,
          );
        }
        for (const o of byName.get(other) ?? []) (dir === 'before' ? edge(t, o) : edge(o, t));
      }
    }
  }
  const ready = taps.filter((t) => indegree.get(t) === 0);
  const out: T[] = [];
  const rank = (a: T, b: T): number => a.stage - b.stage || a.index - b.index;
  while (ready.length) {
    ready.sort(rank);
    const t = ready.shift()!;
    out.push(t);
    for (const s of succ.get(t)!) {
      indegree.set(s, indegree.get(s)! - 1);
      if (indegree.get(s) === 0) ready.push(s);
    }
  }
  if (out.length < taps.length) {
    const stuck = taps.filter((t) => !out.includes(t)).map((t) => t.name);
    throw new TapfitError(
      ErrorCodes.ORDER_CYCLE,
      `hook '${hook}': the before/after constraints of ${stuck.map((s) => `'${s}'`).join(', ')} form a cycle. Remove one of the constraints.`,
    );
  }
  return out;
}

export function asList(x: string | readonly string[] | undefined): readonly string[] {
  return x === undefined ? [] : typeof x === 'string' ? [x] : x;
}
