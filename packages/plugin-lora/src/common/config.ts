import { configError } from './errors';
import type { LayerSelector } from './selectors';

/** How the adapter's down-projection `A` starts (`B` starts at zero; Embedding ignores it: A = 0, B ~ N(0, 1), as PEFT). */
export type LoraInit = 'kaiming' | 'gaussian';

/** Hyperparameters of one adapter; stored in layer configs and adapter files. */
export interface AdapterSpec {
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly rsLora: boolean;
  readonly init: LoraInit;
}

/** The adapter name used when none is given. */
export const DEFAULT_ADAPTER = 'default';

/** What a user may write; `resolveSpec` fills defaults and validates. */
export interface AdapterOptions {
  /** Rank r of the update (an integer >= 1, at most min(fan-in, fan-out) of each target). */
  rank: number;
  /** Scale numerator; the update is scaled by alpha/r (alpha/sqrt(r) with rsLora). Default 2r (the paper's advice). */
  alpha?: number | undefined;
  /** Dropout on the adapter branch input, in [0, 1). Default 0. */
  dropout?: number | undefined;
  /** Scale by alpha/sqrt(r) (rank-stabilised LoRA) instead of alpha/r. Default false. */
  rsLora?: boolean | undefined;
  /** 'kaiming': A ~ U(-1/sqrt(fanIn), 1/sqrt(fanIn)) (PEFT's default); 'gaussian': A ~ N(0, (1/r)^2). */
  init?: LoraInit | undefined;
}

export interface LoraOptions extends AdapterOptions {
  /** Layers to adapt. Every selector must match at least one layer, or applyLora fails. */
  targets: LayerSelector | readonly LayerSelector[];
  /** Layers to leave alone even if a target matches them. Every selector must match too. */
  exclude?: LayerSelector | readonly LayerSelector[] | undefined;
  /** Layers trained in full next to the adapters (e.g. a new classifier head). */
  modulesToSave?: LayerSelector | readonly LayerSelector[] | undefined;
  /** Name of the first adapter. Default 'default'. */
  adapterName?: string | undefined;
  /** Seed for the random factor, A (B for Embedding); target i gets seed + 1000 i. */
  seed?: number | undefined;
}

/** Validate the per-adapter options and fill in defaults. */
export function resolveSpec(opts: AdapterOptions): AdapterSpec {
  const { rank } = opts;
  if (!Number.isInteger(rank) || rank < 1) {
    throw configError(`option 'rank' must be an integer >= 1 (got ${shown(rank)}); typical values are 4 to 64.`);
  }
  const alpha = opts.alpha ?? 2 * rank;
  if (!(Number.isFinite(alpha) && alpha > 0)) {
    throw configError(`option 'alpha' must be a finite number > 0 (got ${shown(alpha)}); the paper advises alpha = 2 * rank.`);
  }
  const dropout = opts.dropout ?? 0;
  if (!(Number.isFinite(dropout) && dropout >= 0 && dropout < 1)) {
    throw configError(`option 'dropout' must be in [0, 1) (got ${shown(dropout)}).`);
  }
  const init = opts.init ?? 'kaiming';
  if (init !== 'kaiming' && init !== 'gaussian') {
    throw configError(`option 'init' must be 'kaiming' or 'gaussian' (got ${shown(init)}).`);
  }
  const rsLora = opts.rsLora ?? false;
  if (typeof rsLora !== 'boolean') throw configError(`option 'rsLora' must be true or false (got ${shown(rsLora)}).`);
  return { rank, alpha, dropout, rsLora, init };
}

/** The options every applyLora / applyLoraToSegments call checks before matching any layer. */
export function resolveOptions(opts: LoraOptions): { spec: AdapterSpec; adapter: string } {
  const spec = resolveSpec(opts);
  const adapter = checkAdapterName(opts.adapterName ?? DEFAULT_ADAPTER);
  if (opts.seed !== undefined && !Number.isInteger(opts.seed)) throw configError(`option 'seed' must be an integer (got ${shown(opts.seed)}).`);
  return { spec, adapter };
}

/** A value as an error message shows it: strings quoted, so `alpha: '4'` reads (got '4'), not (got 4). */
export function shown(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'function') return 'a function';
  if (value !== null && typeof value === 'object') {
    try {
      return JSON.stringify(value);
    } catch {
      return 'an object';
    }
  }
  return String(value);
}

/** A true/false option: a string such as 'false' (from a JSON config or a CLI) is truthy, so only booleans are taken. */
export function checkFlag(option: string, value: unknown, fix: string): void {
  if (value !== undefined && typeof value !== 'boolean') throw configError(`option '${option}' must be true or false (got ${shown(value)}); ${fix}.`);
}

/** gamma_r: alpha / r, or alpha / sqrt(r) for rank-stabilised LoRA. */
export function scaleOf(spec: Pick<AdapterSpec, 'rank' | 'alpha' | 'rsLora'>): number {
  return spec.rsLora ? spec.alpha / Math.sqrt(spec.rank) : spec.alpha / spec.rank;
}

export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

export function checkAdapterName(name: string): string {
  if (typeof name !== 'string' || !ADAPTER_NAME.test(name)) {
    throw configError(`adapter name '${String(name)}' is invalid; use letters, digits, '_' and '-' (starting with a letter or digit).`);
  }
  return name;
}

export function asList<T>(x: T | readonly T[] | undefined): T[] {
  if (x === undefined) return [];
  return Array.isArray(x) ? [...(x as readonly T[])] : [x as T];
}
