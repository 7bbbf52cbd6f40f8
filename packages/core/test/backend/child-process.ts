import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TapfitError } from '../../src/errors';
import { BACKEND_ENV, WASM_THREADS_ENV } from '../../src/backend';

export async function rejection(p: Promise<unknown>): Promise<TapfitError> {
  try {
    await p;
  } catch (err) {
    return err as TapfitError;
  }
  throw new Error('expected a rejection');
}

export const backendDist = path.resolve(__dirname, '../../src/backend');
const nodeModules = path.resolve(require.resolve('@tensorflow/tfjs'), '../../../..');

/**
 * Run a script in a fresh Node process whose working directory may hold fake
 * optional packages (node_modules/@tensorflow/tfjs-node[-gpu]). Resolves with
 * stdout, stderr and the exit code; a process that does not exit in time fails.
 */
export function runChild(script: string, fakes: Record<string, string> = {}, timeoutMs = 60_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-select-'));
  for (const [pkg, source] of Object.entries(fakes)) {
    const pkgDir = path.join(dir, 'node_modules', pkg);
    fs.mkdirSync(pkgDir, { recursive: true });
    fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify({ name: pkg, version: '4.22.0', main: 'index.js' }));
    fs.writeFileSync(path.join(pkgDir, 'index.js'), source);
  }
  fs.writeFileSync(path.join(dir, 'main.js'), `const backend = require(${JSON.stringify(backendDist)});\nconst tf = require('@tensorflow/tfjs');\n${script}`);
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_PATH: nodeModules, ...extraEnv };
    delete env[BACKEND_ENV];
    if (!(WASM_THREADS_ENV in extraEnv)) delete env[WASM_THREADS_ENV];
    execFile(process.execPath, ['main.js'], { cwd: dir, env, timeout: timeoutMs }, (err, stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/**
 * A `navigator.gpu` whose adapter reports `info` (null: no adapter) and cannot create a
 * device. selectBackend uses an existing navigator.gpu as it is, so a child that defines
 * this first sees the same WebGPU on every machine, with or without a GPU (defined, not
 * assigned: Node 21+ has a read-only navigator).
 */
export function fakeGpu(info: object | null): string {
  return `
    Object.defineProperty(globalThis, 'navigator', { configurable: true, writable: true, value: { gpu: { requestAdapter: async () => ${info ? `({
      info: ${JSON.stringify(info)},
      features: new Set(),
      limits: {},
      requestDevice: async () => { throw new Error('this adapter is a stand-in: no device'); },
    })` : 'null'} } } });`;
}

/** A stand-in for @tensorflow/tfjs-node: registers a 'tensorflow' backend that runs the cpu kernels. */
export const fakeTfjsNode = `
const tf = require('@tensorflow/tfjs');
tf.registerBackend('tensorflow', () => new tf.MathBackendCPU(), 3);
tf.copyRegisteredKernels('cpu', 'tensorflow');
`;
