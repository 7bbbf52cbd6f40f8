import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * What a worker's `setupModule` option takes: an absolute path, or a file: URL (what ESM's
 * import.meta.resolve gives). A relative path would resolve against the worker's file, not
 * the caller's, so it is refused.
 */
export function isSetupModuleSpec(spec: string): boolean {
  return path.isAbsolute(spec) || spec.startsWith('file:');
}

/** The refusal's wording for a spec isSetupModuleSpec rejects: the accepted forms and how to write them. */
export const SETUP_MODULE_FORMS = "must be an absolute path or a file: URL (path.resolve(__dirname, 'setup.js'), or import.meta.resolve('./setup.mjs') in ESM)";

/**
 * Loads a worker's setup module with import(), so that CommonJS and ESM (top-level await
 * included) both load. A CommonJS module's exports arrive as named exports where Node's
 * lexer sees them, and always as `default` (module.exports): both are read, named first.
 */
export async function importSetupModule<T extends object>(spec: string): Promise<Partial<T>> {
  const ns = (await import(spec.startsWith('file:') ? spec : pathToFileURL(spec).href)) as Record<string, unknown>;
  const named = Object.fromEntries(Object.entries(ns).filter(([k]) => k !== 'default'));
  const fallback = typeof ns.default === 'object' && ns.default !== null ? ns.default : {};
  return { ...fallback, ...named } as Partial<T>;
}
