import { describeGradientCases } from './gradient-cases';
import { webgpuOrSkip } from './helpers';

// The wasm table's method on webgpu: every gradient the plugins use, against cpu and finite differences.
describeGradientCases('backend: gradients on webgpu vs cpu vs finite differences', (ctx) => webgpuOrSkip(ctx, 'webgpu gradients'));
