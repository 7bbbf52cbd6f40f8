export * from './ops/params';
export * from './ops/activations';
export * from './ops/norm';
export * from './ops/random';
export * from './ops/conv';
export * from './reversible/transform';
export * from './reversible/program';
export * from './reversible/fixed-point';
export * from './reversible/layout';
export * from './reversible/reversible-segment';
export * from './blocks/module';
export * from './blocks/mbconv';
export * from './blocks/coupling';
export * from './blocks/silo';
export * from './blocks/streams';
export * from './blocks/stream-config';
export * from './blocks/revbifpn-blocks';
export * from './models/revbifpn-head';
export * from './models/revbifpn';
export * from './layers/module-layer';
export * from './models/unet-parts';
export * from './models/unet3d';
export * from './models/losses';
export { revsilo, reversiblePlan, REVSILO_PLUGIN, type RevsiloOptions, type SegmentSelector } from './plugin';

import { revsilo } from './plugin';
/** The entry point config files use (`"plugins": [["@tapfit/plugin-revsilo", { ... }]]`). */
export const tapfitPlugin = revsilo;
