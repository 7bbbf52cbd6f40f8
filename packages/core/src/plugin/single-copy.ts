import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, TapfitError } from '../errors';
import { CORE_VERSION } from '../version';

// One copy of @tapfit/core and of each @tensorflow package per process. A plugin loaded by
// path, or installed with its own node_modules, brings its own copies: its hooks, tokens
// and error classes then belong to a core the trainer does not use, and a second tfjs
// registers every kernel again ("kernel already registered", hundreds of times). Each core
// copy records itself under a global symbol when it loads, so any copy can see the others.

/** A loaded copy of a package: its folder (symlinks resolved) and version. */
export interface PackageCopy {
  dir: string;
  version: string;
}

const CORE_COPIES = Symbol.for('tapfit.core.copies');

type Registry = { [CORE_COPIES]?: PackageCopy[] };

/** Records this copy of @tapfit/core in the process-wide list (once per folder). */
export function registerCoreCopy(): void {
  const registry = globalThis as Registry;
  const copies = (registry[CORE_COPIES] ??= []);
  const dir = realDir(path.resolve(__dirname, '../../..'));
  if (!copies.some((c) => c.dir === dir)) copies.push({ dir, version: CORE_VERSION });
}

/** Every copy of @tapfit/core loaded in this process. */
export function loadedCoreCopies(): PackageCopy[] {
  return [...((globalThis as Registry)[CORE_COPIES] ?? [])];
}

const TFJS_MODULE = /^(.*[\\/]node_modules[\\/]@tensorflow[\\/][^\\/]+)[\\/]/;

/** The folders each loaded `@tensorflow/*` package was loaded from (from the module cache). */
export function loadedTfjsCopies(): Map<string, PackageCopy[]> {
  const byName = new Map<string, PackageCopy[]>();
  for (const file of Object.keys(require.cache)) {
    const m = TFJS_MODULE.exec(file);
    if (!m) continue;
    const dir = m[1];
    const name = `@tensorflow/${path.basename(dir)}`;
    const copies = byName.get(name) ?? [];
    if (!copies.some((c) => c.dir === dir)) copies.push({ dir, version: packageVersion(dir) });
    byName.set(name, copies);
  }
  return byName;
}

/**
 * Throws `TAPFIT_E_DUPLICATE_PACKAGE` when two copies of @tapfit/core or of a
 * `@tensorflow/*` package are loaded, naming both folders and the fix. `context` says what
 * was being loaded (e.g. "plugin 'my-plugin'"). The trainer calls it when plugins register.
 */
export function assertSinglePackageCopies(context = 'registering plugins'): void {
  const duplicates: [string, PackageCopy[]][] = [];
  const cores = loadedCoreCopies();
  if (cores.length > 1) duplicates.push(['@tapfit/core', cores]);
  for (const [name, copies] of loadedTfjsCopies()) if (copies.length > 1) duplicates.push([name, copies]);
  if (!duplicates.length) return;
  const found = duplicates.map(([name, copies]) => `${name} from ${copies.map((c) => `${c.dir} (${c.version})`).join(' and ')}`).join('; ');
  throw new TapfitError(
    ErrorCodes.DUPLICATE_PACKAGE,
    `${context}: two copies of a package that must be loaded once: ${found}. ` +
      'A plugin with its own copy of @tapfit/core or tfjs taps hooks of a core the trainer does not use and registers every tfjs kernel again. ' +
      'Fix: the plugin must list @tapfit/core and @tensorflow/tfjs in peerDependencies (not dependencies); delete its own node_modules/@tapfit and node_modules/@tensorflow; ' +
      "install it into the app instead of loading it by path (npm pack in the plugin's folder, then npm install <path to the .tgz> in the app). " +
      'With npm link, the linked folder resolves its own node_modules: delete those copies there, or run node with --preserve-symlinks. ' +
      'If neither copy is a plugin\'s, your project depends on two tfjs versions (a library brings its own): use one version across the project; `npm ls @tensorflow/tfjs-core` shows who brings each copy.',
  );
}

// Every entry point (index, testing) reaches this module, so each copy records itself on load.
registerCoreCopy();

function realDir(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return dir;
  }
}

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown version';
  } catch {
    return 'unknown version';
  }
}
