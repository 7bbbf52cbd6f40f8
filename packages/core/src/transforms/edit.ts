import { ErrorCodes, TapfitError } from '../errors';
import { chain, isChain, listNames, type Chain } from './chain';
import type { StepTransform } from './types';

// Plugins edit the optimizer by member name: Adaptive Braking replaces 'momentum', a
// clipping plugin inserts before it. A query is a name ('momentum') or a path of names
// through nested chains ('sgd/momentum'); it matches every member whose path ends with
// it and must match exactly one. Edits return a new list or chain; nothing is mutated.
// Chains on the path to the edited member are rebuilt with chain(name, ...members).

/** A transform list (the `stepTransforms` hook's value) or a chain. */
export type TransformTree = readonly StepTransform[] | Chain;
/** Editing a chain gives a chain of the same name; editing a list gives a list. */
export type Edited<T extends TransformTree> = T extends Chain ? Chain : StepTransform[];

/** The member `query` names, or undefined when none does. Throws when several do. */
export function findTransform(tree: TransformTree, query: string): StepTransform | undefined {
  const path = locate(tree, query, 'findTransform', false);
  if (path === undefined) return undefined;
  let members = membersOf(tree);
  let found: StepTransform | undefined;
  for (const name of path) {
    found = members.find((t) => t.name === name)!;
    members = isChain(found) ? found.transforms : [];
  }
  return found;
}

/** Put `replacement` where `query`'s member was (the replacement keeps its own name). */
export function replaceTransform<T extends TransformTree>(tree: T, query: string, replacement: StepTransform): Edited<T> {
  return edit(tree, query, 'replaceTransform', (members, i) => [...members.slice(0, i), replacement, ...members.slice(i + 1)]);
}

/** Insert `transform` just before or just after `query`'s member (in the same chain). */
export function insertTransform<T extends TransformTree>(
  tree: T,
  transform: StepTransform,
  where: { before: string } | { after: string },
): Edited<T> {
  const before = 'before' in where;
  const query = before ? where.before : where.after;
  return edit(tree, query, 'insertTransform', (members, i) => {
    const at = before ? i : i + 1;
    return [...members.slice(0, at), transform, ...members.slice(at)];
  });
}

/** Drop `query`'s member. */
export function removeTransform<T extends TransformTree>(tree: T, query: string): Edited<T> {
  return edit(tree, query, 'removeTransform', (members, i) => [...members.slice(0, i), ...members.slice(i + 1)]);
}

type Splice = (members: readonly StepTransform[], index: number) => StepTransform[];

function edit<T extends TransformTree>(tree: T, query: string, who: string, splice: Splice): Edited<T> {
  const path = locate(tree, query, who, true)!;
  const members = rebuild(membersOf(tree), path, splice);
  // chain() validates names, so a replacement that collides with a sibling fails here.
  if (isTreeChain(tree)) return chain(tree.name, ...members) as Edited<T>;
  chain('transform list', ...members);
  return members as Edited<T>;
}

function rebuild(members: readonly StepTransform[], path: readonly string[], splice: Splice): StepTransform[] {
  const i = members.findIndex((t) => t.name === path[0]);
  if (path.length === 1) return splice(members, i);
  const inner = members[i] as Chain;
  const copy = [...members];
  copy[i] = chain(inner.name, ...rebuild(inner.transforms, path.slice(1), splice));
  return copy;
}

/** The one path that ends with `query`; undefined (or an error when `required`) if none. */
function locate(tree: TransformTree, query: string, who: string, required: boolean): string[] | undefined {
  const wanted = query.split('/');
  const all: string[][] = [];
  const walk = (members: readonly StepTransform[], prefix: string[]) => {
    for (const t of members) {
      const path = [...prefix, t.name];
      all.push(path);
      if (isChain(t)) walk(t.transforms, path);
    }
  };
  walk(membersOf(tree), []);
  const matches = all.filter((p) => p.length >= wanted.length && wanted.every((n, k) => p[p.length - wanted.length + k] === n));
  if (matches.length > 1) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${who}: '${query}' matches several transforms: ${listNames(matches.map((p) => p.join('/')))}. ` +
        'Pass a longer path to pick one.',
    );
  }
  if (matches.length === 0 && required) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${who}: no transform named '${query}'; the transforms are ${listNames(all.map((p) => p.join('/')))}.`,
    );
  }
  return matches[0];
}

function membersOf(tree: TransformTree): readonly StepTransform[] {
  return isTreeChain(tree) ? tree.transforms : tree;
}

function isTreeChain(tree: TransformTree): tree is Chain {
  return !Array.isArray(tree) && isChain(tree as Chain);
}
