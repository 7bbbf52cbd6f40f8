import { ErrorCodes, TapfitError } from '../errors';

/** The first place where a value is not plain JSON: what JSON would make of it, and the fix. */
export interface JsonProblem {
  /** Where, from the root: `json.best`, `json.history[3]`. */
  readonly path: string;
  /** What is there and what JSON makes of it: "Infinity, which JSON stores as null". */
  readonly what: string;
  readonly fix: string;
}

const NON_FINITE_FIX = "store it as a string ('Infinity', 'NaN') or a finite sentinel (Number.MAX_VALUE, or null) and map it back in loadState";
const REBUILD_FIX = 'store the plain data it is built from and rebuild it in loadState';
const PLAIN_FIX = 'store a plain object or array instead (Array.from(typedArray), [...map.entries()], date.toISOString()) and rebuild it in loadState';

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const child = (path: string, key: string): string => (identifier.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`);

/** What JSON.stringify writes for a value that is not plain, shortened (it may throw: a BigInt inside). */
function stored(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? 'nothing' : text.length > 40 ? `${text.slice(0, 40)}...` : text;
  } catch {
    return 'nothing (JSON.stringify throws)';
  }
}

/**
 * Where `value` would not come back from `JSON.parse(JSON.stringify(value))` as itself, or
 * undefined when it would: non-finite numbers (stored as null), undefined (dropped from an
 * object, null in an array), functions and symbols, BigInt (JSON.stringify throws), class
 * instances (Map and Set become {}, typed arrays index-keyed objects, a Date a string), holes
 * in arrays, and cycles. -0 is accepted: it comes back as 0, which equals it.
 */
export function jsonProblem(value: unknown, path = 'json', inArray = false, open: readonly object[] = []): JsonProblem | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : { path, what: `${value}, which JSON stores as null`, fix: NON_FINITE_FIX };
    case 'undefined':
      return { path, what: `undefined, which JSON ${inArray ? 'stores as null' : 'drops (the field is missing after a resume)'}`, fix: inArray ? 'store null' : 'store null, or leave the field out' };
    case 'bigint':
      return { path, what: 'a BigInt, which JSON cannot store (JSON.stringify throws)', fix: 'store it as a string (value.toString()) or, when it is small enough, a number' };
    case 'function':
    case 'symbol':
      return { path, what: `a ${typeof value}, which JSON ${inArray ? 'stores as null' : 'drops'}`, fix: REBUILD_FIX };
  }
  if (value === null) return undefined;
  const object = value as object;
  const cycle = open.indexOf(object);
  if (cycle >= 0) return { path, what: 'a reference to an object that contains it (a cycle), which JSON cannot store (JSON.stringify throws)', fix: 'store a tree: each object once, referred to elsewhere by a key' };
  const inside = [...open, object];
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) {
      const at = `${path}[${i}]`;
      if (!(i in object)) return { path: at, what: 'an empty slot, which JSON stores as null', fix: 'fill the array, or store null there' };
      const problem = jsonProblem(object[i], at, true, inside);
      if (problem) return problem;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) {
    const kind = (proto as { constructor?: { name?: string } }).constructor?.name || 'class';
    return { path, what: `a ${kind} instance, which JSON stores as ${stored(object)}`, fix: PLAIN_FIX };
  }
  for (const [key, v] of Object.entries(object)) {
    const problem = jsonProblem(v, child(path, key), false, inside);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Refuses a plugin's `saveState().json` that a checkpoint would not give back as it is
 * (TAPFIT_E_CHECKPOINT naming the plugin, the field and the fix), before anything is written:
 * JSON turns Infinity into null silently, and the resumed run would diverge without a word.
 */
export function refuseLossyPluginJson(plugin: string, json: unknown): void {
  if (json === undefined) return; // no json part
  const problem = jsonProblem(json);
  if (!problem) return;
  throw new TapfitError(
    ErrorCodes.CHECKPOINT,
    `save: plugin '${plugin}' saveState() returned ${problem.path} = ${problem.what}, so the resumed plugin would not get back what it saved. ` +
      `The plugin must ${problem.fix} (saveState().json must be plain JSON: finite numbers, strings, booleans, null, arrays and plain objects). Nothing was written.`,
  );
}
