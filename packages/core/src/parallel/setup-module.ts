import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/** What the `setupModule` option takes: an absolute path, or a file: URL (what ESM's import.meta.resolve gives). */
export function isSetupModuleSpec(spec: string): boolean {
  return path.isAbsolute(spec) || spec.startsWith('file:');
}

export const SETUP_MODULE_FORMS = "must be an absolute path or a file: URL (path.resolve(__dirname, 'setup.js'), or import.meta.resolve('./setup.mjs') in ESM)";

/**
 * Loads a worker's setup module with import(), so that CommonJS and ESM (top-level await
 * included) both load; a CommonJS module's exports are read as named exports and as
 * `default` (module.exports), named first. The same rule as the pipeline's and asyncTrain's.
 */
export async function importSetupModule<T extends object>(spec: string): Promise<Partial<T>> {
  const ns = (await import(spec.startsWith('file:') ? spec : pathToFileURL(spec).href)) as Record<string, unknown>;
  const named = Object.fromEntries(Object.entries(ns).filter(([k]) => k !== 'default'));
  const fallback = typeof ns.default === 'object' && ns.default !== null ? ns.default : {};
  return { ...fallback, ...named } as Partial<T>;
}
