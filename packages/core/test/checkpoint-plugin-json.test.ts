// A plugin's saveState().json goes into the checkpoint's manifest as JSON: what JSON would
// not give back as saved (Infinity as null, a dropped undefined) is refused at save.

import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, Trainer, type PluginState, type TapfitPlugin } from '../src';
import { blobs, checkpointOptions, rejected, tmpDir, useBackend } from './fixtures';

/** A plugin whose saveState().json is whatever the test sets. */
function jsonState(json: () => unknown): TapfitPlugin & { loaded?: unknown } {
  const p: TapfitPlugin & { loaded?: unknown } = {
    name: 'reduce-lr-on-plateau',
    core: '*',
    apply: () => undefined,
    saveState: (): PluginState => ({ json: json() }),
    loadState: (s) => void (p.loaded = s.json),
  };
  return p;
}

/** JSON's own round trip: the oracle of what a checkpoint gives back. */
const throughJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

class Best {
  value = 1;
  improves(v: number): boolean {
    return v < this.value;
  }
}
const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;

/** Values JSON does not give back as they are, and the path the refusal names. */
const lossy: [string, () => unknown, string][] = [
  ['Infinity (Keras\' best = inf)', () => ({ best: Infinity, wait: 0 }), 'json.best'],
  ['-Infinity', () => ({ best: -Infinity }), 'json.best'],
  ['NaN in an array', () => ({ losses: [0.5, NaN] }), 'json.losses[1]'],
  ['an undefined field', () => ({ lastLr: undefined, step: 3 }), 'json.lastLr'],
  ['undefined in an array', () => [1, undefined], 'json[1]'],
  ['a hole in an array', () => ({ h: [1, , 3] }), 'json.h[1]'], // eslint-disable-line no-sparse-arrays
  ['a function', () => ({ schedule: (s: number) => s }), 'json.schedule'],
  ['a class instance', () => ({ best: new Best() }), 'json.best'],
  ['a Map', () => ({ seen: new Map([['a', 1]]) }), 'json.seen'],
  ['a typed array', () => ({ 'per-layer': new Float32Array([1, 2]) }), 'json["per-layer"]'],
  ['a Date', () => ({ at: new Date(0) }), 'json.at'],
  ['a cycle', () => ({ c: cyclic }), 'json.c.self'],
  ['a BigInt', () => ({ tokens: BigInt(10) }), 'json.tokens'],
];

describe("checkpoints: a plugin's saveState().json must come back from JSON as it was saved", () => {
  useBackend('cpu');

  for (const [what, json, path] of lossy) {
    it(`${what} is refused at save, naming the plugin and ${path}, and nothing is written`, async () => {
      // The oracle: JSON itself changes this value (or cannot store it).
      let changed: boolean;
      try {
        changed = !isDeepEqual(throughJson(json()), json()) || !sameClasses(throughJson(json()), json());
      } catch {
        changed = true;
      }
      expect(changed, 'JSON keeps this value: not a lossy case').to.equal(true);
      const data = blobs(32);
      const trainer = new Trainer(checkpointOptions({ plugins: [jsonState(json)] }));
      await trainer.fit(data, { epochs: 1, batchSize: 8 });
      const dir = tmpDir();
      const err = await rejected(trainer.save(dir));
      expect(err.code).to.equal(ErrorCodes.CHECKPOINT);
      expect(err.message).to.include("plugin 'reduce-lr-on-plateau'").and.include(`${path} = `).and.include('Nothing was written');
      expect(fs.readdirSync(dir), 'the checkpoint folder').to.deep.equal([]);
      trainer.dispose();
      data.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }

  it('names the fix for a non-finite number (a string or a finite sentinel) and for undefined (null, or leave it out)', async () => {
    for (const [json, fix] of [
      [{ best: Infinity }, /store it as a string \('Infinity', 'NaN'\) or a finite sentinel/],
      [{ best: undefined }, /store null, or leave the field out/],
    ] as const) {
      const trainer = new Trainer(checkpointOptions({ plugins: [jsonState(() => json)] }));
      await trainer.setup();
      const dir = tmpDir();
      expect((await rejected(trainer.save(dir))).message).to.match(fix);
      trainer.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('plain JSON (nested objects and arrays, null, strings, -0, Number.MAX_VALUE) saves and resumes as JSON gives it back', async () => {
    const json = { best: Number.MAX_VALUE, sentinel: 'Infinity', none: null, zero: -0, nested: { list: [1, 'a', [true, null]], 'odd-key': { x: 0.1 } } };
    const data = blobs(32);
    const trainer = new Trainer(checkpointOptions({ plugins: [jsonState(() => json)] }));
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    const dir = tmpDir();
    await trainer.save(dir);
    trainer.dispose();
    const plugin = jsonState(() => json);
    const resumed = await Trainer.resume(dir, checkpointOptions({ plugins: [plugin] }));
    expect(plugin.loaded).to.deep.equal(throughJson(json));
    expect(plugin.loaded).to.deep.equal({ ...json, zero: 0 }); // -0 comes back as 0, which equals it
    resumed.dispose();
    data.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    tf.dispose();
  });
});

/** Deep equality that tells a missing field from an undefined one and NaN from null (chai's deep equal, as a boolean). */
function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    expect(a).to.deep.equal(b);
    return true;
  } catch {
    return false;
  }
}

/** Whether every object in `a` has the class of the object at the same place in `b` (JSON makes every object a plain one). */
function sameClasses(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return true;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  return Object.keys(a).every((k) => sameClasses((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
