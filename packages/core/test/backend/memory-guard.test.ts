import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { TapfitError } from '../../src/errors';
import { DEFAULT_WASM_BUDGET_BYTES, getMemoryGuard, installMemoryGuard } from '../../src/backend';
import { useShimmedWasm } from './helpers';

const MiB = 2 ** 20;

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('backend: memory guard', function () {
  before(useShimmedWasm);
  afterEach(() => {
    getMemoryGuard('wasm')!.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
    getMemoryGuard('cpu')?.remove();
  });
  after(() => tf.setBackend('cpu'));

  it('selectBackend put a 3 GiB guard on wasm that counts allocations and frees', () => {
    const guard = getMemoryGuard('wasm')!;
    expect(guard.budgetBytes).to.equal(3 * 2 ** 30);
    const used = guard.usedBytes;
    const t = tf.zeros([1024, 256]);
    expect(guard.usedBytes - used).to.equal(1024 * 256 * 4);
    t.dispose();
    expect(guard.usedBytes).to.equal(used);
  });

  it('refuses an allocation over budget with a clear error, allocating nothing', () => {
    const guard = installMemoryGuard(getMemoryGuard('wasm')!.usedBytes + 3 * MiB, 'wasm');
    const keep = tf.zeros([2 * MiB / 4]);
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    const used = guard.usedBytes;
    const err = thrown(() => tf.zeros([2 * MiB / 4]));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
    expect(err.message).to.contain("memory budget exceeded on backend 'wasm'");
    expect(err.message).to.contain('allocating 2.0 MiB');
    expect(err.message).to.match(/over the budget of \d+\.\d MiB/);
    expect(err.message).to.contain('memoryBudgetBytes');
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(tf.backend().numDataIds()).to.equal(dataIds);
    expect(guard.usedBytes).to.equal(used);
    keep.dispose();
    tf.zeros([2 * MiB / 4]).dispose(); // fits again once memory is freed
  });

  it('a composite kernel refused half-way frees the intermediates it had made', () => {
    const x = tf.randomNormal([8, 16, 16, 8]);
    const dy = tf.randomNormal([8, 16, 16, 8]);
    const guard = getMemoryGuard('wasm')!;
    const dataIds = tf.backend().numDataIds();
    // Room for the transposed copy of x, not for dy's as well.
    guard.budgetBytes = guard.usedBytes + x.size * 4 * 1.5;
    const err = thrown(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 8, 8] }));
    expect((err as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
    expect(tf.backend().numDataIds()).to.equal(dataIds);
    tf.dispose([x, dy]);
  });

  it('a training step refused inside tf.tidy throws the guard error', () => {
    const x = tf.randomNormal([8, 16, 16, 8]);
    const f = tf.randomNormal([3, 3, 8, 8]);
    const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same').square().sum())([x, f]));
    tf.dispose(step());
    const guard = getMemoryGuard('wasm')!;
    guard.budgetBytes = guard.usedBytes + x.size * 4 * 2.5; // the forward fits, the backward does not
    expect((thrown(step) as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
    guard.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
    tf.dispose(step());
    tf.dispose([x, f]);
  });

  it('tracks peak usage', () => {
    const guard = getMemoryGuard('wasm')!;
    const big = tf.zeros([MiB]);
    expect(guard.peakBytes).to.be.at.least(guard.usedBytes);
    expect(guard.peakBytes).to.be.at.least(4 * MiB);
    big.dispose();
  });

  it('guards cpu as well, and remove() lifts the budget', async () => {
    await tf.setBackend('cpu');
    try {
      const guard = installMemoryGuard(1 * MiB, 'cpu');
      const a = tf.zeros([MiB / 8]);
      const err = thrown(() => tf.add(a, 1).add(a));
      expect((err as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
      expect(err.message).to.contain("backend 'cpu'");
      a.dispose();
      expect(guard.usedBytes).to.equal(0);
      guard.remove();
      expect(getMemoryGuard('cpu')).to.equal(undefined);
      tf.zeros([MiB]).dispose();
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('rejects a budget that is not a positive number', () => {
    for (const bad of [0, -1, Number.NaN, '1e9' as unknown as number]) {
      const err = thrown(() => installMemoryGuard(bad, 'wasm'));
      expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.contain('memoryBudgetBytes');
    }
  });
});
