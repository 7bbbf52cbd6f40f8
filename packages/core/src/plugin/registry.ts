import * as semver from 'semver';
import { ErrorCodes, TapfitError } from '../errors';
import { tokenName } from '../services/tokens';
import { CORE_VERSION } from '../version';
import { assertSinglePackageCopies } from './single-copy';
import type { PluginClass, PluginConflict, TapfitPlugin } from './types';

export type PluginSpec = TapfitPlugin | PluginClass;

function describeSpec(p: unknown): string {
  return typeof p === 'function' ? `class ${(p as { name: string }).name}` : JSON.stringify(p)?.slice(0, 80) ?? String(p);
}

/** Checks one plugin's own metadata (shape, name, core range). */
export function validatePlugin(p: unknown): asserts p is TapfitPlugin {
  const bad = (why: string): never => {
    throw new TapfitError(ErrorCodes.PLUGIN_INVALID, `not a tapfit plugin (${describeSpec(p)}): ${why}. A plugin is { name, core, requires?, conflicts?, apply(api) }.`);
  };
  if (typeof p !== 'object' || p === null) bad('expected an object');
  const q = p as Partial<TapfitPlugin>;
  if (typeof q.name !== 'string' || !q.name) bad('missing a non-empty string `name`');
  if (typeof q.apply !== 'function') bad(`plugin '${q.name}' has no apply(api) function`);
  if (typeof q.core !== 'string' || !semver.validRange(q.core)) {
    bad(`plugin '${q.name}' must declare \`core\` as a semver range of @tapfit/core (e.g. '^${semver.major(CORE_VERSION)}.${semver.minor(CORE_VERSION)}.0')`);
  }
  for (const list of ['requires', 'conflicts'] as const) {
    const v = q[list];
    if (v !== undefined && !(Array.isArray(v) && v.every((c) => typeof c === 'string' || (list === 'conflicts' && isReasonedConflict(c))))) {
      bad(`plugin '${q.name}': \`${list}\` must be a list of plugin names${list === 'conflicts' ? " or { plugin, reason } entries, e.g. [{ plugin: 'pipeline', reason: 'both replace the Backprop' }]" : ''}`);
    }
  }
  if (!semver.satisfies(CORE_VERSION, q.core!, { includePrerelease: true })) {
    throw new TapfitError(
      ErrorCodes.PLUGIN_CORE_RANGE,
      `plugin '${q.name}' supports @tapfit/core ${q.core}, but this is ${CORE_VERSION}. Install a version of the plugin built for core ${CORE_VERSION}.`,
    );
  }
}

/**
 * The trainer's `plugins` option is a list (or absent). A single plugin, or a plugin's name
 * as a config file writes it, would otherwise fail on a bare `.map is not a function`.
 */
export function checkPluginsOption(plugins: unknown): void {
  if (plugins == null || Array.isArray(plugins)) return;
  const got = typeof plugins === 'string' ? `the string '${plugins}'` : typeof plugins === 'object' && plugins !== null && 'apply' in plugins ? `one plugin ('${String((plugins as { name?: unknown }).name)}')` : describeSpec(plugins);
  const hint = typeof plugins === 'string' ? " Names are for CLI configs; in code, call the plugin's factory: `plugins: [lora({ rank: 4 })]`." : ' Put it in a list: `plugins: [plugin]`.';
  throw new TapfitError(ErrorCodes.CONFIG, `trainer: \`plugins\` must be a list of plugins, got ${got}.${hint}`);
}

/**
 * Checks a whole plugin list before anything is applied: each plugin valid, names
 * unique, every `requires` present, no `conflicts` present, one copy of core and tfjs
 * loaded. Throws on the first problem.
 */
export function validatePluginSet(plugins: readonly TapfitPlugin[]): void {
  assertSinglePackageCopies(`registering plugin(s) ${plugins.map((p) => `'${(p as Partial<TapfitPlugin>)?.name}'`).join(', ') || '(none)'}`);
  const names = new Set<string>();
  for (const p of plugins) {
    validatePlugin(p);
    if (names.has(p.name)) {
      throw new TapfitError(ErrorCodes.PLUGIN_DUPLICATE, `plugin '${p.name}' is registered twice. Register each plugin once (combine the options).`);
    }
    names.add(p.name);
  }
  const providers = new Map<unknown, string>();
  for (const p of plugins) {
    if (p.provides !== undefined && !Array.isArray(p.provides)) {
      throw new TapfitError(ErrorCodes.PLUGIN_INVALID, `plugin '${p.name}': \`provides\` must be a list of service tokens, e.g. [Tokens.Backprop].`);
    }
    for (const token of p.provides ?? []) {
      const other = providers.get(token);
      if (other !== undefined) {
        throw new TapfitError(
          ErrorCodes.PLUGIN_CONFLICTS,
          `plugins '${other}' and '${p.name}' both replace the service '${tokenName(token)}'; only one can. Remove one of them.`,
        );
      }
      providers.set(token, p.name);
    }
  }
  for (const p of plugins) {
    for (const r of p.requires ?? []) {
      if (!names.has(r)) {
        throw new TapfitError(ErrorCodes.PLUGIN_REQUIRES, `plugin '${p.name}' requires plugin '${r}', which is not registered. Add '${r}' to the plugins list.`);
      }
    }
    for (const c of p.conflicts ?? []) {
      const other = typeof c === 'string' ? c : c.plugin;
      if (names.has(other)) {
        const why = typeof c === 'string' ? 'conflict and cannot be used together' : `cannot be used together: ${c.reason.replace(/\.$/, '')}`;
        throw new TapfitError(ErrorCodes.PLUGIN_CONFLICTS, `plugins '${p.name}' and '${other}' ${why}. Remove one of them.`);
      }
    }
  }
}

function isReasonedConflict(c: unknown): c is Exclude<PluginConflict, string> {
  const e = c as { plugin?: unknown; reason?: unknown } | null;
  return typeof e === 'object' && e !== null && typeof e.plugin === 'string' && typeof e.reason === 'string' && e.reason.length > 0;
}
