import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, composite, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/**
 * Transform (tf.image.transform: projective warps, rotations, shears for augmentation)
 * on cpu for a batch of more than one image. tfjs-backend-cpu 4.22 returns from inside its
 * batch loop, so only the first image was transformed and the others came back as the fill
 * value. Each image runs on its own here, with its own transform row, and the results are
 * stacked.
 */
export function installTransformBatch(o: Overrides, backends: readonly string[]): void {
  for (const backendName of backends) {
    const transform = tf.getKernel('Transform', backendName);
    if (!transform) throw new TapfitError(ErrorCodes.BACKEND, `kernel 'Transform' is not registered for ${backendName}. Install @tensorflow/tfjs 4.22.`);
    o.kernel(kernelConfig('Transform', backendName, (args) => {
      const { image, transforms } = args.inputs;
      const batch = image.shape[0];
      if (batch <= 1) return callKernel(transform, args);
      return composite(args.backend, backendName, (k) => {
        const [, h, w, c] = image.shape;
        const images = Array.from({ length: batch }, (_, b) => {
          const one = k.run('Slice', { x: image }, { begin: [b, 0, 0, 0], size: [1, h, w, c] });
          const row = transforms.shape[0] === 1 ? transforms : k.run('Slice', { x: transforms }, { begin: [b, 0], size: [1, 8] });
          return k.track(callKernel(transform, { ...args, inputs: { image: one, transforms: row } }));
        });
        return k.run('Concat', images as unknown as Record<string, tf.TensorInfo>, { axis: 0 });
      });
    }));
  }
}
