// Registers the LoRA layer classes for (de)serialisation on import.
export { LoraLayer, type LoraLayerState, type LoraLayerConfig } from './layers/lora-layer';
export { LoraDense } from './layers/lora-dense';
export { LoraConv2D } from './layers/lora-conv2d';
export { LoraEmbedding } from './layers/lora-embedding';

export {
  type AdapterOptions,
  type AdapterSpec,
  type LayerSelector,
  type LoraInit,
  type LoraOptions,
  DEFAULT_ADAPTER,
  resolveSpec,
  scaleOf,
} from './shared/config';
export { applyLora } from './layers/inject';
export { planLora, formatPlan, type LoraPlan, type PlannedLayer, type SelectorProblem } from './shared/lora-plan';
export { LoraModel } from './layers/lora-model';
export {
  addAdapter,
  type AddAdapterOptions,
  activeAdapterOf,
  adapterNamesOf,
  isMerged,
  mergeAdapter,
  setActiveAdapter,
  unloadLora,
  unmergeAdapter,
} from './layers/adapters';
export { saveAdapter, loadAdapter, readAdapter, type AdapterFile, type LoadAdapterOptions, ADAPTER_FORMAT, ADAPTER_VERSION } from './layers/adapter-io';
export { fingerprint, fingerprintMismatch, segmentFingerprint, type BaseFingerprint } from './shared/fingerprint';
export { applyLoraToSegments, LoraSegmentModel, type SegmentAdapter } from './segments/segment-lora';
export { planSegmentLora, segmentCatalog, type VariableEntry } from './segments/segment-plan';
export {
  analyzeUpdate,
  formatAnalysis,
  singularValues,
  explainedRank,
  rank90,
  type LayerUpdate,
  type Spectrum,
  type UpdateAnalysis,
} from './shared/spectrum';
export { loraLayersOf } from './layers/catalog';
export { lora, LORA_PLUGIN, type LoraPluginOptions } from './plugin';

/** Entry point for `tapfit train` configs: ["@tapfit/plugin-lora", { "targets": "all-linear", "rank": 8 }]. */
export { lora as tapfitPlugin } from './plugin';
