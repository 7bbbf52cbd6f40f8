import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { TapfitError } from '../../src/errors';
import { DEFAULT_WASM_BUDGET_BYTES, getMemoryGuard, installMemoryGuard, type MemoryGuard } from '../../src/backend';
import { arrayData, SilentLogger, Trainer } from '../../src';
import { sgd } from '../../src/transforms';
import { blobData, tinyModel } from '../../src/testing';
import { useShimmedWasm } from './helpers';
import { thrown } from '../fixtures';
import { runChild } from './child-process';

const MiB = 2 ** 20;


/** What must be the same before an op and after it was refused. */
function accounts(guard: MemoryGuard) {
  const m = tf.memory();
  return { guardBytes: guard.usedBytes, engineBytes: m.numBytes, tensors: m.numTensors, dataIds: tf.backend().numDataIds() };
}

/**
 * Runs `op` under budgets from just above the current use upwards, `step` bytes apart,
 * until it succeeds. After each refusal the accounts must be as before (nothing the
 * refused op made stays live, and the guard counts what is live), and an allocation
 * that fills the budget must succeed. Returns how many budgets refused it.
 */
function refuseAtEveryPoint(guard: MemoryGuard, op: () => tf.TensorContainer, step: number): number {
  let refusals = 0;
  for (let budget = guard.usedBytes + 4; ; budget += step) {
    const before = accounts(guard);
    guard.budgetBytes = budget;
    let out: tf.TensorContainer;
    try {
      out = op();
    } catch (err) {
      expect((err as TapfitError).code, (err as Error).message).to.equal('TAPFIT_E_MEMORY');
      refusals++;
      expect(accounts(guard), `after the refusal under a budget of ${budget - before.guardBytes} B above use`).to.deep.equal(before);
      const room = Math.floor((budget - guard.usedBytes) / 4);
      if (room > 0) tf.zeros([room]).dispose(); // what fits is not refused
      continue;
    } finally {
      guard.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
    }
    tf.dispose(out);
    return refusals;
  }
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

  it('a kernel refused after allocating intermediates leaves the count equal to the live bytes', () => {
    // The shim's matMul transposes its inputs first: refusals land before, between and after those copies.
    const a = tf.randomNormal([64, 48]);
    const b = tf.randomNormal([32, 64]);
    const guard = getMemoryGuard('wasm')!;
    expect(refuseAtEveryPoint(guard, () => tf.tidy(() => tf.matMul(a, b, true, true)), 1024)).to.be.at.least(3);
    tf.dispose([a, b]);
  });

  it('a refused concat whose input had to move from cpu loses nothing and leaves nothing', async () => {
    await tf.setBackend('cpu');
    const fromCpu = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
    await tf.setBackend('wasm');
    const a = tf.ones([3, 2]);
    const guard = getMemoryGuard('wasm')!;
    // wasm's concat allocates its 48 B output, then moves the 24 B input in: refuse the move, then the output.
    for (const room of [60, 20]) {
      const before = accounts(guard);
      guard.budgetBytes = guard.usedBytes + room;
      try {
        expect((thrown(() => tf.tidy(() => tf.concat([a, fromCpu]))) as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
      } finally {
        guard.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
      }
      const after = accounts(guard);
      expect(after.tensors).to.equal(before.tensors);
      expect(after.engineBytes).to.equal(before.engineBytes);
      // Whichever backend holds it now, the moved input is counted where it lives and still reads back.
      expect(after.guardBytes - before.guardBytes).to.equal(after.dataIds - before.dataIds === 1 ? 24 : 0);
      expect(Array.from(fromCpu.dataSync())).to.deep.equal([1, 2, 3, 4, 5, 6]);
    }
    expect(Array.from(tf.concat([a, fromCpu]).dataSync())).to.deep.equal([1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6]);
    tf.dispose([a, fromCpu]);
  });

  it('a gradient refused half-way frees the tensors its tape had saved', () => {
    const x = tf.randomNormal([4, 8, 8, 4]);
    const f = tf.randomNormal([3, 3, 4, 4]);
    const guard = getMemoryGuard('wasm')!;
    const grads = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same').square().sum())([x, f]));
    expect(refuseAtEveryPoint(guard, grads, 2048)).to.be.at.least(5);
    tf.dispose([x, f]);
  });

  it('a customGrad refused after saving tensors for its backward leaves nothing kept', () => {
    const x = tf.randomNormal([32, 32]);
    const op = tf.customGrad(((a: tf.Tensor, save: tf.GradSaveFunc) => {
      const y = tf.exp(a);
      save([a, y]);
      return { value: tf.mul(tf.square(y), 2), gradFunc: (dy: tf.Tensor, [, s]: tf.Tensor[]) => tf.mul(dy, tf.mul(tf.square(s), 4)) };
    }) as never) as unknown as (a: tf.Tensor) => tf.Tensor;
    const guard = getMemoryGuard('wasm')!;
    expect(refuseAtEveryPoint(guard, () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(op(a)))(x)), 1024)).to.be.at.least(5);
    x.dispose();
  });

  it('a Trainer step refused anywhere leaves nothing live, and the next step that fits runs', async () => {
    const before = tf.memory().numTensors;
    const guard = getMemoryGuard('wasm')!;
    const usedBefore = guard.usedBytes;
    const model = tinyModel({ seed: 3 });
    const data = blobData(32, { seed: 3 });
    const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), logger: new SilentLogger() });
    await trainer.setup();
    const fitOnce = () => trainer.fit(data, { epochs: 1, batchSize: 32, shuffle: false });
    await fitOnce(); // momentum state exists from here on
    let refusals = 0;
    const weights = () => Object.values(trainer.variables).map((v) => Array.from(v.dataSync()));
    for (let budget = guard.usedBytes + 4; ; budget += 256) {
      const accountsBefore = accounts(guard);
      const weightsBefore = weights();
      guard.budgetBytes = budget;
      try {
        await fitOnce();
        break;
      } catch (err) {
        expect((err as TapfitError).code, (err as Error).message).to.equal('TAPFIT_E_MEMORY');
        refusals++;
        expect(accounts(guard), `after a step refused ${budget - accountsBefore.guardBytes} B above use`).to.deep.equal(accountsBefore);
        guard.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
        expect(weights(), `a step refused ${budget - accountsBefore.guardBytes} B above use changed no weight`).to.deep.equal(weightsBefore);
      } finally {
        guard.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
      }
    }
    expect(refusals).to.be.at.least(10);
    expect(trainer.step).to.equal(2);
    trainer.dispose();
    model.dispose();
    data.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    expect(guard.usedBytes).to.equal(usedBefore);
  });

  it("says what to do for the kind of tensor refused: the model's own (no batch size helps), data uploaded at once, one batch cut on the host, an op's output", async () => {
    const guard = getMemoryGuard('wasm')!;
    // Sizes well above what is live already, so that each is a large part of the budget.
    const unit = Math.max(MiB, 2 ** Math.ceil(Math.log2(guard.usedBytes + 1)));
    const refusal = async (f: () => unknown, room: number) => {
      guard.budgetBytes = guard.usedBytes + room;
      try {
        const err = await Promise.resolve().then(f).then(() => null, (e: TapfitError) => e);
        expect(err?.code, err?.message).to.equal('TAPFIT_E_MEMORY');
        return err!.message;
      } finally {
        guard.budgetBytes = DEFAULT_WASM_BUDGET_BYTES;
      }
    };
    // A dense layer whose weight gradient does not fit beside the weights: the model is too big for wasm.
    const features = Math.round(Math.sqrt(unit / 4));
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [features], units: features, useBias: false })] });
    const trainer = new Trainer({ model, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger() });
    await trainer.setup();
    const kernel = Object.values(trainer.variables)[0];
    const [x, y] = [tf.zeros([2, features]), tf.zeros([2, features])];
    const step = await refusal(() => trainer.fit(x, y, { epochs: 1, batchSize: 2 }), kernel.size * 2);
    expect(step).to.contain(`the variable '${kernel.name}'`).and.contain('the model itself does not fit').and.contain("selectBackend('cpu')").and.contain('@tensorflow/tfjs-node');
    expect(step).to.not.contain('use a smaller batch');
    trainer.dispose();
    model.dispose();
    tf.dispose([x, y]);
    // A dataset uploaded whole (arrayData keeps its arrays on the host and uploads batches, so tf.tensor here): stream it.
    const rows = (unit / 4 / 10) | 1;
    const upload = await refusal(() => tf.tensor2d(new Float32Array(rows * 10), [rows, 10]), unit / 4);
    expect(upload).to.contain('datasetData').and.not.contain('model itself');
    // What each route keeps where (in-memory-data.test: arrayData uploads nothing until a batch is cut).
    expect(upload).to.contain('tensorData(x, y)').and.contain('arrayData({ x, y }) and fit(x, y) given arrays keep the data on the host and upload one batch at a time');
    expect(upload).to.not.match(/arrayData[^.]*keeps? the whole dataset on the backend/);
    // One batch that fit cut from arrays (the rest is on the host): a smaller batch, not another data route.
    const width = 256;
    const batchRows = Math.max(1, Math.round(unit / 2 / 4 / width));
    const small = tf.sequential({ layers: [tf.layers.dense({ inputShape: [width], units: 1 })] });
    const smallTrainer = new Trainer({ model: small, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger() });
    await smallTrainer.setup();
    const onHost = arrayData({ x: new Float32Array(2 * batchRows * width), y: new Float32Array(2 * batchRows), xShape: [width] });
    const batch = await refusal(() => smallTrainer.fit(onHost, { epochs: 1, batchSize: batchRows }), unit / 4);
    expect(batch).to.contain('one batch of data').and.contain('use a smaller batchSize').and.not.contain('datasetData').and.not.contain('model itself');
    smallTrainer.dispose();
    small.dispose();
    onHost.dispose();
    // An op's output: a smaller batch, or recomputation.
    const a = tf.ones([unit / 4 + 3]);
    const sum = await refusal(() => tf.add(a, a), unit / 2);
    expect(sum).to.contain('use a smaller batch').and.contain('memoryBudget(').and.not.contain('datasetData').and.not.contain('model itself');
    a.dispose();
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

  it('on cpu, a refused concat gives back its hold on the inputs: freeing them makes room again', async () => {
    await tf.setBackend('cpu');
    try {
      const guard = installMemoryGuard(3 * MiB, 'cpu');
      const dataIds = tf.backend().numDataIds();
      const a = tf.zeros([MiB / 4]);
      const b = tf.zeros([MiB / 4]);
      expect((thrown(() => tf.tidy(() => tf.concat([a, b]))) as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
      expect(guard.usedBytes).to.equal(2 * MiB);
      tf.dispose([a, b]);
      expect(guard.usedBytes).to.equal(0);
      expect(tf.backend().numDataIds()).to.equal(dataIds);
      tf.zeros([(3 * MiB) / 4]).dispose(); // the whole budget is free again
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
  it('after tf.engine().reset(), selectBackend guards the new wasm backend: the budget holds and usedBytes counts its tensors', async function () {
    this.timeout(120_000);
    // In a fresh process: a reset ends every tensor and backend of this one.
    const r = await runChild(`
      (async () => {
        const MiB = 2 ** 20;
        const refused = (bytes) => {
          try {
            tf.zeros([bytes / 4]).dispose();
            return false;
          } catch (e) {
            if (e.code !== 'TAPFIT_E_MEMORY') throw e;
            return true;
          }
        };
        const options = { threads: 1, memoryBudgetBytes: 8 * MiB, log: false };
        await backend.selectBackend('wasm', options);
        tf.ones([MiB / 4]); // live when the engine is reset
        tf.engine().reset();
        const s = await backend.selectBackend('wasm', options);
        const kept = tf.ones([MiB / 2]);
        console.log(JSON.stringify({
          used: s.memoryGuard.usedBytes,
          live: tf.memory().numBytes,
          current: backend.getMemoryGuard('wasm') === s.memoryGuard,
          refused: { '4 MiB': refused(4 * MiB), '16 MiB': refused(16 * MiB) },
        }));
      })();
    `);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.live).to.equal(2 * MiB);
    expect(out.used).to.equal(out.live);
    expect(out.current).to.equal(true);
    expect(out.refused).to.deep.equal({ '4 MiB': false, '16 MiB': true });
  });
});
