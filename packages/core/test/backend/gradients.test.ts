import { describeGradientCases } from './gradient-cases';
import { useShimmedWasm } from './helpers';

describeGradientCases('backend: gradients on shimmed wasm vs cpu vs finite differences', () => useShimmedWasm());
