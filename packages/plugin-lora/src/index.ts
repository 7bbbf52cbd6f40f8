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
} from './config';
export { applyLora } from './inject';
export { planLora, formatPlan, type LoraPlan, type PlannedLayer, type SelectorProblem } from './plan';
export { LoraModel } from './lora-model';
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
} from './adapters';
export { saveAdapter, loadAdapter, readAdapter, type AdapterFile, type LoadAdapterOptions, ADAPTER_FORMAT, ADAPTER_VERSION } from './adapter-io';
export { fingerprint, fingerprintMismatch, segmentFingerprint, type BaseFingerprint } from './fingerprint';
export { applyLoraToSegments, LoraSegmentModel, type SegmentAdapter } from './segment-lora';
export { planSegmentLora, segmentCatalog, type VariableEntry } from './segment-plan';
export {
  analyzeUpdate,
  formatAnalysis,
  singularValues,
  explainedRank,
  rank90,
  type LayerUpdate,
  type Spectrum,
  type UpdateAnalysis,
} from './spectral';
export { loraLayersOf } from './catalog';
export { lora, LORA_PLUGIN, type LoraPluginOptions } from './plugin';

/** Entry point for `tapfit train` configs: ["@tapfit/plugin-lora", { "targets": "all-linear", "rank": 8 }]. */
export { lora as tapfitPlugin } from './plugin';
