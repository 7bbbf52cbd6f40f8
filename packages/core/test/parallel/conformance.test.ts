import { dataParallel } from '../../src';
import { describeConformance } from '../../src/testing';
import { useBackend } from '../fixtures';

// The plugin author's kit on dataParallel; its functional twin is the trainer without it
// (one thread), which must train to the same predictions up to float rounding.
describe('dataParallel under the conformance kit', () => {
  useBackend('wasm'); // registers wasm (with tapfit's shim) before the kit selects it
  describeConformance({ plugin: () => dataParallel(), twin: () => ({}), twinTolerance: 1e-5 }, { backend: 'wasm' });
});
