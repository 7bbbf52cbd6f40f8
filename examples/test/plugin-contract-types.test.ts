import { expect } from 'chai';
import { compileConsumer } from './public-declarations';

// The plugin contract as a plugin author's compiler sees it. The core calls apply, checkState,
// loadState, dispose and the synchronous hooks' taps without awaiting them, so an `async`
// implementation must be a compile error (a plain `void` return type would accept it), while
// every ordinary synchronous form still compiles. Each misuse carries @ts-expect-error: an
// "Unused '@ts-expect-error'" error means that misuse compiled.

const code = `
import * as tf from '@tensorflow/tfjs';
import type { PluginApi, PluginState, TapfitPlugin } from '@tapfit/core';
declare const v: tf.Variable;
declare const ema: tf.Tensor;
const check = (s: PluginState): void => { if (!s.json) throw new Error('no state'); };

// Ordinary plugins compile.
export const block: TapfitPlugin = { name: 'a', core: '*', apply(api) { api.hooks.batchEnd.tap('a', () => undefined); } };
export const expression: TapfitPlugin = { name: 'b', core: '*', apply: (api) => api.hooks.backward.tap('b', (g) => g) };
export const empty: TapfitPlugin = { name: 'c', core: '*', apply() {}, checkState: (s) => void check(s), loadState: check, dispose() {} };
export const asyncSetup: TapfitPlugin = {
  name: 'd',
  core: '*',
  // Async work belongs in a setup tap (an async hook), and async batchEnd taps are awaited.
  apply: (api) => {
    api.hooks.setup.tap('d', async () => { await Promise.resolve(); });
    api.hooks.batchEnd.tap('d', async () => undefined);
    api.hooks.evaluateStart.tap('d', () => v.assign(ema));
  },
};
export class ClassPlugin implements TapfitPlugin {
  readonly name = 'e';
  readonly core = '*';
  apply(api: PluginApi): void { api.hooks.fitEnd.tap('e', () => undefined); }
  checkState(state: PluginState): void { check(state); }
  loadState(state: PluginState): void { check(state); }
  dispose(): void {}
}

// Async implementations do not compile.
export const asyncApply: TapfitPlugin = {
  name: 'f',
  core: '*',
  // @ts-expect-error an async apply: nothing awaits it
  async apply(api) { await Promise.resolve(); api.hooks.batchEnd.tap('f', () => undefined); },
};
export const asyncArrow: TapfitPlugin = {
  name: 'g',
  core: '*',
  // @ts-expect-error an async arrow apply
  apply: async () => undefined,
};
export const asyncCheck: TapfitPlugin = {
  name: 'h',
  core: '*',
  apply() {},
  // @ts-expect-error an async checkState: its refusal would come after the resume went ahead
  async checkState(s) { check(s); },
};
export const asyncLoad: TapfitPlugin = {
  name: 'i',
  core: '*',
  apply() {},
  // @ts-expect-error an async loadState
  loadState: async (s: PluginState) => check(s),
};
export const asyncDispose: TapfitPlugin = {
  name: 'j',
  core: '*',
  apply() {},
  // @ts-expect-error an async dispose
  async dispose() {},
};
export class AsyncClass implements TapfitPlugin {
  readonly name = 'k';
  readonly core = '*';
  // @ts-expect-error a class's async apply
  async apply(): Promise<void> {}
}
export const asyncSyncTap: TapfitPlugin = {
  name: 'l',
  core: '*',
  apply: (api) => {
    // @ts-expect-error evaluateStart is synchronous (it runs inside evaluate(x, y))
    api.hooks.evaluateStart.tap('l', async () => undefined);
  },
};
`;

describe('plugin contract types in a strict consumer project', function () {
  this.timeout(120_000);
  it('async apply/checkState/loadState/dispose and async taps of synchronous hooks do not compile; synchronous ones do', () => {
    expect(compileConsumer('plugin-contract-types', code, {})).to.deep.equal([]);
  });
});
