// Registers the LoRA layer classes for (de)serialisation on import.
export { LoraLayer, type LoraLayerState, type LoraLayerConfig, type AdapterInit, type FusedActivation } from './layers/lora-layer';
export { LoraDense } from './layers/lora-dense';
export { LoraConv2D } from './layers/lora-conv2d';
export { LoraEmbedding } from './layers/lora-embedding';

// Shared by both paths: options, selectors, plans, adapter files, spectra.
export { type AdapterOptions, type AdapterSpec, type LoraInit, type LoraOptions, DEFAULT_ADAPTER, resolveSpec, scaleOf } from './common/config';
export { type LayerSelector } from './common/selectors';
export { formatPlan, type DryRunOptions, type LoraPlan, type PlannedLayer, type SelectorProblem } from './common/lora-plan';
export { readAdapter, type AdapterFile, type WeightEntry, ADAPTER_FORMAT, ADAPTER_VERSION } from './common/adapter-file';
export { fingerprintMismatch, type BaseFingerprint } from './common/fingerprint';
export { singularValues, explainedRank, rank90, type Spectrum } from './common/spectrum';

// tfjs-layers models.
export { applyLora } from './layers/apply-lora';
export { planLora } from './layers/layer-plan';
export { LoraModel } from './layers/lora-model';
export { addAdapter, type AddAdapterOptions, activeAdapterOf, adapterNamesOf, isMerged, setActiveAdapter } from './layers/adapters';
export { mergeAdapter, unmergeAdapter } from './layers/merge';
export { unloadLora } from './layers/unload';
export { saveAdapter, loadAdapter, type LoadAdapterOptions } from './layers/adapter-io';
export { fingerprint } from './layers/layer-fingerprint';
export { loraLayersOf } from './layers/catalog';
export { analyzeUpdate, formatAnalysis, type LayerUpdate, type UpdateAnalysis } from './layers/update-analysis';

// Core segment models.
export { applyLoraToSegments, LoraSegmentModel, type SegmentAdapter } from './segments/segment-lora';
export { planSegmentLora } from './segments/segment-plan';
export { segmentCatalog, type VariableEntry } from './segments/segment-catalog';
export { segmentFingerprint } from './segments/segment-fingerprint';

// The tapfit plugin.
export { lora, LORA_PLUGIN, type LoraHandles, type LoraPluginOptions } from './plugin';

/** Entry point for `tapfit train` configs: ["@tapfit/plugin-lora", { "targets": "all-linear", "rank": 8 }]. */
export { lora as tapfitPlugin } from './plugin';
