/**
 * What a config's `plugins` entry may name: an installed npm package, never a file.
 * A config file is data (it may come from someone else); letting it name a path would let
 * it run any file on the machine. Local plugin files need the explicit `--local-plugin` flag.
 */

// npm's rules for package names (legacy upper case allowed): optional @scope/, then the name.
const PACKAGE_NAME = /^(@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/i;

/** Relative or absolute paths (POSIX or Windows) and file: URLs. */
export function isPathLike(spec: string): boolean {
  return /^(\.{1,2}([/\\]|$)|[/\\~]|[a-z]:|file:)/i.test(spec);
}

/** Why `spec` cannot be a config plugin (with the fix), or undefined when it is a package name. */
export function pluginSpecProblem(spec: string): string | undefined {
  if (isPathLike(spec)) {
    return "is a file path, but config plugins are npm package names so that a config cannot make tapfit run an arbitrary file. Install the plugin as a package, or load a local file on purpose with the command-line flag '--local-plugin <file>'";
  }
  if (!PACKAGE_NAME.test(spec)) {
    return "is not an npm package name ('name' or '@scope/name'); config plugins are installed packages. Load a local file on purpose with the command-line flag '--local-plugin <file>'";
  }
  return undefined;
}
