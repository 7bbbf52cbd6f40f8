import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * What a worker's `setupModule` option takes: an absolute path, or a file: URL (what ESM's
 * import.meta.resolve gives). A relative path would resolve against the worker's file, not
 * the caller's, so it is refused.
 */
export function isSetupModuleSpec(moduleSpec: string): boolean {
  return path.isAbsolute(moduleSpec) || moduleSpec.startsWith('file:');
}

/** The refusal's wording for a moduleSpec isSetupModuleSpec rejects: the accepted forms and how to write them. */
export const SETUP_MODULE_FORMS = "must be an absolute path or a file: URL (path.resolve(__dirname, 'setup.js'), or import.meta.resolve('./setup.mjs') in ESM)";

// require() refuses these ESM graphs; import() loads them.
const NEEDS_IMPORT = new Set(['ERR_REQUIRE_ASYNC_MODULE', 'ERR_REQUIRE_ESM']);

/**
 * Loads a worker's setup module. A path loads with require() first, so that what require()
 * resolves still loads (a path without its extension, a folder with an index.js or a
 * package.json `main`), and with import() where require() cannot (ESM with top-level await,
 * or on a Node without require(esm)); a file: URL loads with import(). Named exports are
 * read over a `default` object's keys (import() gives a CommonJS module.exports as `default`).
 */
export async function importSetupModule<T extends object>(moduleSpec: string): Promise<Partial<T>> {
  const ns = moduleSpec.startsWith('file:') ? await importUrl(moduleSpec) : await requireOrImport(moduleSpec);
  const named = Object.fromEntries(Object.entries(ns).filter(([k]) => k !== 'default'));
  const fallback = typeof ns.default === 'object' && ns.default !== null ? ns.default : {};
  return { ...fallback, ...named } as Partial<T>;
}

async function requireOrImport(file: string): Promise<Record<string, unknown>> {
  try {
    return require(file) as Record<string, unknown>;
  } catch (err) {
    if (!NEEDS_IMPORT.has((err as { code?: string } | null)?.code ?? '')) throw err;
  }
  return importUrl(pathToFileURL(file).href);
}

// Compiled as CommonJS with module node16, this stays a real import().
const importUrl = async (url: string) => (await import(url)) as Record<string, unknown>;
