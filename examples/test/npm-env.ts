import { execFileSync } from 'node:child_process';

/**
 * The environment for a child `npm` that must act as a user's own command: without the
 * `npm_*` variables that `npm test` sets for this repository (its prefix, package and
 * lifecycle), which would otherwise point the child at the workspace.
 */
export function userNpmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'));
}

/** Runs npm in `cwd` as a user would; returns stdout (throws with stderr on failure). */
export function npm(args: string[], cwd: string): string {
  try {
    return execFileSync('npm', args, { cwd, encoding: 'utf8', env: userNpmEnv(), stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 2 ** 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`npm ${args.join(' ')} (in ${cwd}) failed: ${e.stderr || e.message}`);
  }
}
