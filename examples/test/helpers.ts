import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '@tapfit/core';

export const tmpDir = (prefix = 'tapfit-examples-'): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** Writes `body` as JSON to `<dir>/<name>` (a fresh folder by default); returns the path. */
export function writeJson(body: unknown, dir = tmpDir(), name = 'config.json'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(body));
  return file;
}

/** Writes a CommonJS module; returns its path. */
export function writeModule(dir: string, name: string, source: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, source);
  return file;
}

/** A config that trains in about a second on the cpu backend: a small MLP on a few hundred digits. */
export function tinyConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    backend: 'cpu',
    seed: 2,
    model: { preset: 'mnist-mlp', options: { hidden: [32] } },
    data: { dataset: 'mnist', train: 300, test: 100 },
    optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, schedule: 'cosine' },
    training: { epochs: 3, batchSize: 20 },
    log: { progress: false },
    ...overrides,
  };
}

/** A logger that keeps what it is told. */
export function recordingLogger(): Logger & { warnings: string[]; infos: string[] } {
  const l = { warnings: [] as string[], infos: [] as string[], info: (m: string) => void l.infos.push(m), warn: (m: string) => void l.warnings.push(m) };
  return l;
}

export function errorOf(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

export async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/**
 * Runs `fn` with every `fs.writeFileSync` failing half-way, as a full disk (or a kill)
 * would: the first half of the body reaches the target, then ENOSPC is thrown.
 */
export function withFailingWrites<T>(fn: () => T): T {
  const nodeFs: typeof fs = require('node:fs');
  const original = nodeFs.writeFileSync;
  nodeFs.writeFileSync = ((target: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView) => {
    const body = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    original(target, body.subarray(0, Math.floor(body.length / 2)));
    throw Object.assign(new Error('ENOSPC: no space left on device, write (simulated)'), { code: 'ENOSPC' });
  }) as typeof fs.writeFileSync;
  try {
    return fn();
  } finally {
    nodeFs.writeFileSync = original;
  }
}
