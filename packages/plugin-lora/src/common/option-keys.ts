import { optionSchemas } from '@tapfit/core';
import { configError } from './errors';

// An option nobody reads would train silently with its default (`lora_alpha: 32` runs
// with alpha 2r), which JSON configs (`tapfit train`) make easy; so every call that takes
// options refuses keys it does not know, translating PEFT's names.

/** The per-adapter options (`AdapterOptions`). */
export const ADAPTER_KEYS = ['rank', 'alpha', 'dropout', 'rsLora', 'init'] as const;
/** `LoraOptions`: what applyLora, applyLoraToSegments and the plugin share. */
export const LORA_KEYS = [...ADAPTER_KEYS, 'targets', 'exclude', 'modulesToSave', 'adapterName', 'seed'] as const;
/** `DryRunOptions`: applyLora and applyLoraToSegments only. */
export const DRY_RUN_KEYS = ['dryRun', 'logger'] as const;

/** PEFT's LoraConfig names (and their camelCase spellings, keyed without '_' and in lower case) mapped to ours. */
const PEFT_NAMES: Record<string, string> = {
  r: 'rank',
  loraalpha: 'alpha',
  loradropout: 'dropout',
  targetmodules: 'targets',
  excludemodules: 'exclude',
  modulestosave: 'modulesToSave',
  userslora: 'rsLora',
  initloraweights: 'init',
  adaptername: 'adapterName',
};

/** PEFT options with no counterpart here: saying so beats a "did you mean" guess. */
const PEFT_UNSUPPORTED = new Set(['usedora', 'bias', 'faninfanout', 'rankpattern', 'alphapattern', 'layerstotransform', 'layerspattern', 'tasktype', 'inferencemode', 'loftqconfig', 'layerreplication', 'pefttype']);

/**
 * Throw a CONFIG error naming every key of `options` that `who` does not take, with
 * PEFT's name translated ('lora_alpha' is 'alpha') or else the nearest valid key.
 * `elsewhere` explains keys that belong to another entry point.
 */
export function checkOptionKeys(who: string, options: object, valid: readonly string[], elsewhere: Record<string, string> = {}): void {
  if (options === null || typeof options !== 'object') throw configError(`${who}: options must be an object (got ${String(options)}).`);
  const unknown = Object.keys(options).filter((k) => !valid.includes(k));
  if (unknown.length === 0) return;
  const hints = unknown.map((k) => {
    if (k in elsewhere) return `'${k}' (${elsewhere[k]})`;
    const normalised = k.replace(/_/g, '').toLowerCase();
    const ours = PEFT_NAMES[normalised];
    if (ours && valid.includes(ours)) return `'${k}' (PEFT's name; here it is '${ours}')`;
    if (PEFT_UNSUPPORTED.has(normalised)) return `'${k}' (a PEFT option this package does not implement)`;
    return `'${k}'${optionSchemas.suggest(k, valid)}`;
  });
  throw configError(`${who}: unknown option(s) ${hints.join(', ')}. Rename or remove them: an option nobody reads would leave its default in place.`);
}
