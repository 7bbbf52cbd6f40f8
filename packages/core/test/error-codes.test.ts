import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { segmentModel, TapfitError, type TapfitPlugin } from '../src';
import { assertChannelsLast } from '../src/backend/wasm-shim/conv2d-backprop';
import { Scratch } from '../src/backend/wasm-shim/kernel-calls';
import { gradients } from '../src/memory/tape';
import { checkGradients, checkNoLeaks, conformanceChecks } from '../src/testing';
import { useBackend } from './fixtures';

async function caught(f: () => unknown): Promise<TapfitError> {
  try {
    await f();
  } catch (err) {
    return err as TapfitError;
  }
  throw new Error('expected an error');
}

function expectCode(err: TapfitError, code: string, ...parts: string[]): void {
  expect(err, err.message).to.be.instanceOf(TapfitError);
  expect(err.code).to.equal(code);
  for (const p of parts) expect(err.message).to.contain(p);
}

describe('errors raised by core are TapfitErrors with a code and a fix', () => {
  useBackend('cpu');

  it('segmentModel: duplicate segment names (TAPFIT_E_CONFIG)', async () => {
    const s = { name: 'block', params: [], forward: (xs: tf.Tensor[]) => xs };
    expectCode(await caught(() => segmentModel([s, { ...s }])), 'TAPFIT_E_CONFIG', "two segments are named 'block'", 'Rename');
  });

  it('checkGradients: a wrong gradient (TAPFIT_E_CHECK)', async () => {
    const x = tf.tensor1d([0.3, -0.7]);
    const wrong = tf.customGrad(((v: tf.Tensor, save: tf.GradSaveFunc) => {
      save([v]);
      return { value: tf.sum(tf.square(v)), gradFunc: (dy: tf.Tensor, [s]: tf.Tensor[]) => tf.mul(dy, tf.mul(s, 3)) };
    }) as never) as unknown as (v: tf.Tensor) => tf.Scalar;
    expectCode(await caught(() => checkGradients(wrong, [x])), 'TAPFIT_E_CHECK', 'gradient check failed', 'tolerance');
    x.dispose();
  });

  it('checkNoLeaks: growth of the tensor count (TAPFIT_E_CHECK)', async () => {
    const kept: tf.Tensor[] = [];
    expectCode(await caught(() => checkNoLeaks(() => kept.push(tf.ones([2])), { label: 'kept' })), 'TAPFIT_E_CHECK', 'kept: 1 tensor(s) leaked', 'tf.tidy');
    tf.dispose(kept);
  });

  it('conformance: a failed check (TAPFIT_E_CHECK)', async () => {
    const leaky = (): TapfitPlugin => ({ name: 'leaky', core: '*', apply: ({ hooks }) => hooks.backward.tap('leaky', (g) => (tf.keep(tf.scalar(1)), g)) });
    const check = conformanceChecks({ plugin: leaky }).find((c) => c.name.startsWith('leaks no tensors'))!;
    expectCode(await caught(() => check.run()), 'TAPFIT_E_CHECK', 'conformance: ');
  });

  it('the backward: a kernel without a gradient function (TAPFIT_E_GRADIENT)', async () => {
    const kernelName = 'TapfitTestNoGradient';
    tf.registerKernel({ kernelName, backendName: 'cpu', kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as tf.TensorInfo;
      (backend as tf.KernelBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    } });
    const x = tf.ones([2]);
    try {
      const err = await caught(() => gradients(() => tf.sum(tf.engine().runKernel(kernelName, { x }) as tf.Tensor), [x]));
      expectCode(err, 'TAPFIT_E_GRADIENT', `kernel '${kernelName}'`, 'tf.registerGradient');
    } finally {
      tf.unregisterKernel(kernelName, 'cpu');
      x.dispose();
    }
  });

  it('wasm shim: channels-first data on a channels-last-only kernel (TAPFIT_E_BACKEND)', async () => {
    expectCode(await caught(() => assertChannelsLast('Conv2DBackpropInput', 'NCHW')), 'TAPFIT_E_BACKEND', "kernel 'Conv2DBackpropInput'", "'NCHW'", 'channels-last');
  });

  it('wasm shim: a composite that needs a kernel the backend lacks (TAPFIT_E_BACKEND)', async () => {
    const scratch = new Scratch(tf.backend(), 'cpu');
    expectCode(await caught(() => scratch.run('NoSuchKernel', {})), 'TAPFIT_E_BACKEND', "kernel 'NoSuchKernel'", "backend 'cpu'");
  });
});
