import { kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/**
 * A correct ResizeNearestNeighborGrad. tfjs-backend-cpu 4.22's kernel reads dy
 * at the image's batch stride instead of dy's, so every image after the first
 * gets a wrong gradient (and it ignores halfPixelCenters). This is the exact
 * adjoint of the forward: each dy value is added to the source pixel the
 * forward copied it from, chosen by the same rule as the forward kernel.
 * Plain JS over the backend's data, so one implementation serves any backend.
 */
export function installResizeNearestGrad(o: Overrides, backendNames: readonly string[]): void {
  for (const backendName of backendNames) {
    o.kernel(kernelConfig('ResizeNearestNeighborGrad', backendName, ({ inputs, attrs, backend }) => {
        const { images, dy } = inputs;
        const { alignCorners, halfPixelCenters } = attrs as { alignCorners: boolean; halfPixelCenters: boolean };
        const dyValues = backend.readSync(dy.dataId) as Float32Array;
        const dx = resizeNearestAdjoint(dyValues, images.shape, dy.shape, alignCorners, halfPixelCenters);
        return { dataId: backend.write(dx, images.shape, 'float32'), shape: images.shape, dtype: 'float32' };
    }));
  }
}

export function resizeNearestAdjoint(
  dy: ArrayLike<number>,
  imageShape: number[],
  dyShape: number[],
  alignCorners: boolean,
  halfPixelCenters: boolean,
): Float32Array {
  const [batch, height, width, depth] = imageShape;
  const [, newHeight, newWidth] = dyShape;
  const dx = new Float32Array(batch * height * width * depth);
  const sourceRow = nearestSource(height, newHeight, alignCorners, halfPixelCenters);
  const sourceCol = nearestSource(width, newWidth, alignCorners, halfPixelCenters);
  let i = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < newHeight; r++) {
      const rowBase = (b * height + sourceRow(r)) * width;
      for (let c = 0; c < newWidth; c++) {
        const base = (rowBase + sourceCol(c)) * depth;
        for (let d = 0; d < depth; d++) dx[base + d] += dy[i++];
      }
    }
  }
  return dx;
}

/** The source index the forward nearest-neighbour resize reads for output index i. */
function nearestSource(inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): (i: number) => number {
  const corners = alignCorners && outSize > 1;
  const ratio = (corners ? inSize - 1 : inSize) / (corners ? outSize - 1 : outSize);
  return (i) => {
    const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
    const nearest = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
    return halfPixelCenters ? Math.max(0, nearest) : nearest;
  };
}
