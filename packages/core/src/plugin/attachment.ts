import type { TapfitPlugin } from './types';

/*
 * Which trainer each plugin instance serves. A plugin instance keeps what it made for its
 * trainer (adapters, buffers, counters): applied to a second trainer, it serves that one,
 * and the first may no longer train, evaluate or save with it (its steps would change
 * state the second relies on), nor free it in dispose(). The first trainer's methods
 * refuse, naming the plugin; a trainer that failed to build hands the plugins back.
 */
const owners = new WeakMap<TapfitPlugin, object>();

/** Makes `trainer` the owner of `plugins`; returns what puts the previous owners back (for a trainer that failed to build). */
export function attachPlugins(plugins: readonly TapfitPlugin[], trainer: object): () => void {
  const previous = plugins.map((p) => [p, owners.get(p)] as const);
  for (const p of plugins) owners.set(p, trainer);
  return () => {
    for (const [p, owner] of previous) {
      if (owners.get(p) !== trainer) continue;
      if (owner === undefined) owners.delete(p);
      else owners.set(p, owner);
    }
  };
}

/** The first of `plugins` that another trainer has taken over since `trainer` applied it. */
export function pluginTakenOver(plugins: readonly TapfitPlugin[], trainer: object): TapfitPlugin | undefined {
  return plugins.find((p) => owners.get(p) !== trainer);
}

/** Lets go of the plugins `trainer` still owns (after its dispose()). */
export function releasePlugins(plugins: readonly TapfitPlugin[], trainer: object): void {
  for (const p of plugins) if (owners.get(p) === trainer) owners.delete(p);
}
