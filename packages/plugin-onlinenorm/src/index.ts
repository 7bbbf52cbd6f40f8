export { onlineNormalize, type NormMode, type NormalizeArgs } from './normalize';
export { OnlineNormState, createOnlineNormState, disposeOnlineNormState, readFiniteChecks, type StatName, type UnreadCheck } from './state';
export { activationClamp, layerScale } from './compensation';
export { OnlineNorm, onlineNormLayer, type OnlineNormLayerArgs } from './layer';
export { DEFAULTS, resolveOptions, type OnlineNormOptions, type ErrorCompensation, type ResolvedOnlineNormOptions } from './options';
export { replaceBatchNorm, selectBatchNorms, checkSelector, type BatchNormSelector, type ReplaceBatchNormOptions } from './replace-batchnorm';
export { geometricScan, affineScan } from './scan';
export type { RecurrenceMode } from './recurrences';
export { onlineNorm, onlineNormLayers, ONLINE_NORM_PLUGIN, type OnlineNormPluginOptions } from './plugin';

import { onlineNorm } from './plugin';
/** The entry point config files use (`"plugins": [["@tapfit/plugin-onlinenorm", { ... }]]`). */
export const tapfitPlugin = onlineNorm;
