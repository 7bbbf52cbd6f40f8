import { ErrorCodes, TapfitError } from '../errors';
import type { TapfitPlugin } from './types';

/*
 * Which live trainer each plugin instance is applied to. A plugin instance keeps what it
 * made for its trainer (adapters, buffers, counters, the trainer view it was given):
 * shared by two live trainers, one's steps would change the other's state and one
 * dispose() would free what the other uses. So a second trainer is refused before any
 * plugin is applied, and the instance is free again once its trainer is disposed (or
 * failed to build).
 */
const owners = new WeakMap<TapfitPlugin, object>();

/** Marks `plugins` as applied to `trainer`, refusing (before marking any) one that another live trainer holds. */
export function attachPlugins(plugins: readonly TapfitPlugin[], trainer: object): void {
  const taken = plugins.find((p) => owners.has(p) && owners.get(p) !== trainer);
  if (taken) {
    throw new TapfitError(
      ErrorCodes.STATE,
      `plugin '${taken.name}' is applied to another trainer that has not been disposed; two live trainers would share its state. ` +
        `Give each trainer its own instance (call the plugin's factory again, or pass a plugin class that is not a singleton), or dispose() the other trainer first.`,
    );
  }
  for (const p of plugins) owners.set(p, trainer);
}

/** Frees the plugins `trainer` holds (after its dispose(), or when it failed to build). */
export function releasePlugins(plugins: readonly TapfitPlugin[], trainer: object): void {
  for (const p of plugins) if (owners.get(p) === trainer) owners.delete(p);
}
