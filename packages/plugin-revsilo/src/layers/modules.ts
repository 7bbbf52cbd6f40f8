import { siloBlock, spaceToDepthBlock, streamBlocks, tileChannelsBlock, type SiloBlockOptions, type StreamBlocksOptions } from '../blocks/revbifpn-blocks';
import { headBlock, neckBlock, type HeadOptions, type NeckOptions } from '../models/revbifpn-head';
import { unetConvBlock, unetHeadBlock, unetUpBlock, type UNetConvOptions } from '../models/unet-parts';
import { registerModule } from './module-layer';

// The module kinds ModuleLayer can build (and tf.loadLayersModel can rebuild).
registerModule('tileChannels', (o) => tileChannelsBlock(o.name, o['channels'] as number));
registerModule('spaceToDepth', (o) => spaceToDepthBlock(o.name, o['block'] as number));
registerModule('streamBlocks', (o, p) => streamBlocks(o as unknown as StreamBlocksOptions, p));
registerModule('revSilo', (o, p) => siloBlock(o as unknown as SiloBlockOptions, p));
registerModule('neck', (o, p) => neckBlock(o as unknown as NeckOptions, p));
registerModule('head', (o, p) => headBlock(o as unknown as HeadOptions, p));
registerModule('unetStem', (o, p) => unetConvBlock({ ...(o as unknown as UNetConvOptions), stride: 1 }, p));
registerModule('unetDown', (o, p) => unetConvBlock({ ...(o as unknown as UNetConvOptions), stride: 2 }, p));
registerModule('unetUp', (o, p) => unetUpBlock(o as unknown as UNetConvOptions, p));
registerModule('unetHead', (o, p) => unetHeadBlock(o as unknown as { name: string; inChannels: number; classes: number }, p));
