/**
 * Loads the module a plugin comes from (an installed package or a `--local-plugin` file),
 * CommonJS or ESM. CommonJS, and ESM that Node's require(esm) takes, load with require();
 * an ESM-only package (an `exports` map with no `require` entry) or ESM with top-level await
 * loads with import(). Each failure names what really went wrong: only a package that is not
 * found is "not installed".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, TapfitError } from '@tapfit/core';

export type PluginModule = { tapfitPlugin?: (options: unknown) => unknown };

// require() refuses these ESM graphs; import() loads them.
const NEEDS_IMPORT = new Set(['ERR_REQUIRE_ASYNC_MODULE', 'ERR_REQUIRE_ESM']);

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];
const codeOf = (err: unknown) => (err as { code?: unknown })?.code;

/** Loads `file` (absolute, already resolved): require(), or import() where require() cannot. */
async function loadResolved(file: string, esmOnly: boolean): Promise<PluginModule> {
  if (!esmOnly) {
    try {
      return require(file) as PluginModule;
    } catch (err) {
      if (!NEEDS_IMPORT.has(codeOf(err) as string)) throw err;
    }
  }
  // Compiled as CommonJS with module node16, this stays a real import().
  return (await import(pathToFileURL(file).href)) as PluginModule;
}

/** The folder `pkg` is installed in, searched as require() does: node_modules of each start folder and its parents. */
function installedDir(pkg: string, starts: readonly string[]): string | undefined {
  for (const start of starts) {
    for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', pkg);
      if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
      if (path.dirname(dir) === dir) break;
    }
  }
  return undefined;
}

/** The file a package's `exports` gives an ESM import of the package itself ('.'), or undefined. */
function importEntry(pkgDir: string): string | undefined {
  const exp = (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { exports?: unknown }).exports;
  const root = exp && typeof exp === 'object' && !Array.isArray(exp) && Object.keys(exp).some((k) => k.startsWith('.')) ? (exp as Record<string, unknown>)['.'] : exp;
  const target = conditionTarget(root, ['import', 'node', 'default']);
  return target === undefined ? undefined : path.resolve(pkgDir, target);
}

// Node's rule: the first key (in the map's order) that is an active condition and has a usable target wins.
function conditionTarget(target: unknown, conditions: readonly string[]): string | undefined {
  if (typeof target === 'string') return target.startsWith('./') ? target : undefined;
  if (Array.isArray(target)) {
    for (const t of target) {
      const found = conditionTarget(t, conditions);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (target && typeof target === 'object') {
    for (const [key, value] of Object.entries(target)) {
      if (!conditions.includes(key)) continue;
      const found = conditionTarget(value, conditions);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Loads the installed package `pkg`, resolved from `starts` in order. `label` starts each
 * error ("config.plugins.0: plugin package 'x'").
 */
export async function loadPackageModule(pkg: string, starts: readonly string[], label: string): Promise<PluginModule> {
  let file: string;
  let esmOnly = false;
  try {
    file = require.resolve(pkg, { paths: [...starts] });
  } catch (err) {
    const dir = installedDir(pkg, starts);
    if (!dir) {
      throw new TapfitError(ErrorCodes.CONFIG, `${label} is not installed (${firstLine(err)}). Run: npm install ${pkg}`);
    }
    const entry = codeOf(err) === 'ERR_PACKAGE_PATH_NOT_EXPORTED' ? importEntry(dir) : undefined;
    if (entry === undefined) {
      throw new TapfitError(ErrorCodes.CONFIG, `${label} is installed (${dir}) but has no entry to load (${firstLine(err)}): its package.json needs "main" or an "exports" entry for require or import; reinstall it or report it to its author.`);
    }
    [file, esmOnly] = [entry, true];
  }
  try {
    return await loadResolved(file, esmOnly);
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, `${label} is installed (${file}) but failed to load: ${firstLine(err)}`);
  }
}

/** Loads the local file at the absolute path `where`; `label` starts each error ("--local-plugin ./x.js"). */
export async function loadFileModule(where: string, label: string): Promise<PluginModule> {
  let file: string;
  try {
    file = require.resolve(where);
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, `${label}: cannot load '${where}' (${firstLine(err)}). Check the path; it is resolved against the current folder.`);
  }
  try {
    return await loadResolved(file, false);
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, `${label}: '${file}' failed to load: ${firstLine(err)}`);
  }
}
