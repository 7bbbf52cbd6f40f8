import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, optionSchemas, parseOptions, TapfitError, type Segment, type TrainableModel } from '@tapfit/core';
import { z } from 'zod';
import { storedPiece } from '../blocks/revbifpn-blocks';
import { checkFixedPoint, DEFAULT_FRACTION_BITS } from '../reversible/fixed-point';
import type { ConvSettings, StreamConfig } from '../blocks/stream-config';
import { ModuleLayer, uniqueLayerName } from '../layers/module-layer';
import '../layers/modules';
import { ACTIVATIONS } from '../ops/activations';
import { NORM_KINDS } from '../ops/norm';

export type RevBiFPNVariant = 'S0' | 'S1' | 'S2' | 'S3' | 'S4' | 'S5' | 'S6';

export interface RevBiFPNOptions extends Omit<ConvSettings, 'dims' | 'depthwise3d'> {
  /** Paper variant (docs/techniques.md §2.4). Default 'S0'. */
  variant?: RevBiFPNVariant | undefined;
  /**
   * Extra channel multiplier for scaled-down (< 1) or wider networks: stream 0 rounds to a
   * multiple of 16 (the stem's space-to-depth needs C_0 / 16 input channels), the others
   * and the neck to multiples of 8. Default 1.
   */
  width?: number | undefined;
  /** Number of resolution streams L. Default 4. */
  streams?: number | undefined;
  /** Extension layers E (non-growing silos, each after two per-stream blocks). Default: the variant's. */
  extensions?: number | undefined;
  /** Square input size; must be divisible by 4 * 2^(L-1). Default: the variant's. */
  inputSize?: number | undefined;
  /** Image channels (3 for RGB, 1 for grey). Default 3. */
  inputChannels?: number | undefined;
  /** Default 1000. */
  classes?: number | undefined;
  /** Dropout before the classifier. Default 0.2. */
  dropout?: number | undefined;
  /**
   * Fraction bits of the reversible segments' exact fixed-point arithmetic
   * (reversible/fixed-point.ts): rebuilt activations equal the forward's bit for bit, so
   * training matches the stored twin exactly. 0: plain float32. Default 16.
   */
  fixedPoint?: number | undefined;
  /** Seed of the weights (two builds with one seed are identical). Default 1. */
  seed?: number | undefined;
  /** Prefix of the segment and layer names. Default 'revbifpn'. */
  name?: string | undefined;
  /** Per-stream overrides (L entries each). */
  channels?: number[] | undefined;
  kernels?: number[] | undefined;
  pads?: number[] | undefined;
  expandRatios?: number[] | undefined;
  seRatios?: number[] | undefined;
  neckChannels?: number[] | undefined;
  headChannels?: number | undefined;
}

/** Everything `revBiFPN` built from, after defaults. */
export interface RevBiFPNConfig {
  readonly variant: RevBiFPNVariant;
  readonly inputSize: number;
  readonly inputChannels: number;
  readonly extensions: number;
  readonly streams: readonly StreamConfig[];
  readonly neckChannels: readonly number[];
  readonly headChannels: number;
  readonly classes: number;
  readonly dropout: number;
  readonly settings: ConvSettings;
}

/** S0 (docs/techniques.md §2.4) and the variants' channel multipliers, extensions and input sizes. */
const S0 = { channels: [48, 64, 80, 160], kernels: [3, 5, 5, 3], pads: [0, 0, 0, 2], expandRatios: [1, 1, 2, 2], seRatios: [0.25, 0.25, 0.125, 0], neck: [48, 64, 128, 320], head: 1280 };
const VARIANTS: Record<RevBiFPNVariant, { multiplier: number; extensions: number; inputSize: number }> = {
  S0: { multiplier: 1, extensions: 2, inputSize: 224 },
  S1: { multiplier: 4 / 3, extensions: 2, inputSize: 256 },
  S2: { multiplier: 2, extensions: 2, inputSize: 256 },
  S3: { multiplier: 8 / 3, extensions: 3, inputSize: 288 },
  S4: { multiplier: 4, extensions: 4, inputSize: 320 },
  S5: { multiplier: 16 / 3, extensions: 4, inputSize: 352 },
  S6: { multiplier: 20 / 3, extensions: 5, inputSize: 352 },
};

/** A RevBiFPN classifier: the trainer's model (segments), its tfjs-layers form, and the stored twin. */
export interface RevBiFPNModel extends TrainableModel {
  readonly config: RevBiFPNConfig;
  readonly layersModel: tf.LayersModel;
  readonly segments: readonly Segment[];
  /** The same network (same variables) with no segment invertible: the non-reversible twin. */
  stored(): TrainableModel;
  /** Frees the variables and kept statistics. */
  dispose(): void;
}

// Every key, typed: a misspelt option (`widht: 0.25`) would otherwise build the default
// network silently. Ranges are checked in resolveRevBiFPN, where each error can name its fix.
const number = (what: string) => z.number({ error: `must be ${what}` }).optional();
const perStream = z.array(z.unknown(), { error: 'must be a list with one number per stream' }).optional();
const optionsSchema = z.strictObject(
  {
    variant: z.unknown().optional(),
    width: number('a number > 0 (e.g. 0.25 for a scaled-down network)'),
    streams: number('an integer from 1 to 4'),
    extensions: number('a whole number (e.g. 2)'),
    inputSize: number('a whole number divisible by 4 * 2^(streams - 1) (e.g. 224)'),
    inputChannels: number('a positive integer (3 for RGB, 1 for grey)'),
    classes: number('a positive integer (the number of classes)'),
    dropout: number('a number in [0, 1) (0 for none)'),
    fixedPoint: number('an integer from 0 to 23 (fraction bits; 0 for plain float32)'),
    seed: number('an integer (the seed of the weights)'),
    name: z.string({ error: "must be a non-empty string (the prefix of segment and layer names, e.g. 'revbifpn')" }).min(1, "must be a non-empty string (the prefix of segment and layer names, e.g. 'revbifpn')").optional(),
    channels: perStream,
    kernels: perStream,
    pads: perStream,
    expandRatios: perStream,
    seRatios: perStream,
    neckChannels: perStream,
    headChannels: number('a positive integer (e.g. 1280 for S0)'),
    norm: z.unknown().optional(),
    groups: number('a positive integer (the groups of group norm)'),
    activation: z.unknown().optional(),
    epsilon: number("a number > 0 (added to the norms' variance)"),
    momentum: number('a number in [0, 1] (the batch-norm moving-average momentum, TF.js convention)'),
    dropPath: number('a number in [0, 1) (0: no stochastic depth)'),
    zeroInitLastGamma: optionSchemas.flag.optional(),
  } satisfies Record<keyof RevBiFPNOptions, z.ZodType>,
  { error: 'options must be an object, e.g. revBiFPN({ width: 0.25 })' },
);

const round = (c: number, multiple: number): number => Math.max(multiple, Math.round(c / multiple) * multiple);

/** Fills in defaults and checks the options; errors name the option and the fix. */
export function resolveRevBiFPN(options: RevBiFPNOptions = {}): RevBiFPNConfig {
  const bad = (option: string, why: string, fix: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `revBiFPN: option '${option}' ${why}; ${fix}.`);
  };
  parseOptions('revBiFPN', optionsSchema, options);
  const variant = options.variant ?? 'S0';
  if (!(variant in VARIANTS)) bad('variant', `is '${String(variant)}'`, `use one of ${Object.keys(VARIANTS).join(', ')}`);
  const v = VARIANTS[variant];
  const width = options.width ?? 1;
  if (!(width > 0)) bad('width', `must be > 0 (got ${width})`, 'use e.g. 0.25 for a scaled-down network');
  const L = options.streams ?? 4;
  if (!Number.isInteger(L) || L < 1 || L > 4) bad('streams', `must be an integer from 1 to 4 (got ${L})`, 'pass 1-4, or per-stream lists (channels, kernels, ...) of that length');
  // A per-stream list: L entries, each passing `ok` (checked here, so errors name the option, not a block inside).
  const list = (name: keyof RevBiFPNOptions, given: number[] | undefined, fallback: number[], ok: (v: number) => boolean, rule: string): number[] => {
    const out = given ?? fallback.slice(0, L);
    if (!Array.isArray(out) || out.length !== L) bad(name, `has ${Array.isArray(out) ? out.length : 'no'} entries but the network has ${L} streams`, `give ${L} values`);
    out.forEach((v, i) => {
      if (typeof v !== 'number' || !ok(v)) bad(name, `has ${v} for stream ${i}`, rule);
    });
    return out;
  };
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  // Variants round down to multiples of 16 (docs/techniques.md §2.4); the width then rounds as documented above.
  const variantChannels = S0.channels.map((c) => Math.floor((c * v.multiplier) / 16) * 16);
  const channels = list('channels', options.channels, variantChannels.map((c, i) => round(c * width, i === 0 ? 16 : 8)), (c) => positiveInt(c) && c % 2 === 0, 'use even channel counts (couplings split them in halves)');
  if (channels[0] % 16 !== 0) bad('channels', `has ${channels[0]} for stream 0`, 'use a multiple of 16 (the stem is a space-to-depth by 4 of C_0 / 16 channels)');
  // Depthwise kernels must be odd: blocks use k_i + p_i, f transforms 2s - 1 + p_i, g transforms 3 + p_j.
  const kernels = list('kernels', options.kernels, S0.kernels, (k) => positiveInt(k) && k % 2 === 1, 'use odd kernel sizes (3, 5, 7, ...)');
  const pads = list('pads', options.pads, S0.pads, (p) => Number.isInteger(p) && p >= 0 && p % 2 === 0, 'use even pads >= 0 (a pad is added to odd kernels, which must stay odd)');
  const expandRatios = list('expandRatios', options.expandRatios, S0.expandRatios, (r) => r > 0 && Number.isFinite(r), 'use ratios > 0 (1: no expansion)');
  const seRatios = list('seRatios', options.seRatios, S0.seRatios, (r) => r >= 0 && r <= 1, 'use ratios in [0, 1] (0: no squeeze-excite)');
  const neckChannels = list('neckChannels', options.neckChannels, S0.neck.map((c) => round(Math.floor((c * v.multiplier) / 16) * 16 * width, 8)), positiveInt, 'use positive whole channel counts');
  const headChannels = options.headChannels ?? round(S0.head * width, 8);
  if (!positiveInt(headChannels)) bad('headChannels', `must be a positive integer (got ${headChannels})`, 'pass e.g. 1280 (S0), or leave it out for the width-scaled default');
  const inputChannels = options.inputChannels ?? 3;
  if (!positiveInt(inputChannels)) bad('inputChannels', `must be a positive integer (got ${inputChannels})`, 'use 3 for RGB, 1 for grey');
  const inputSize = options.inputSize ?? v.inputSize;
  const reduction = 4 * 2 ** (L - 1);
  if (!Number.isInteger(inputSize) || inputSize % reduction !== 0) {
    bad('inputSize', `is ${inputSize}, which does not halve ${L - 1} times after the stem's reduction by 4 (stream shapes must halve)`, `use a multiple of ${reduction}`);
  }
  const extensions = options.extensions ?? v.extensions;
  if (!Number.isInteger(extensions) || extensions < 0) bad('extensions', `must be a whole number (got ${extensions})`, 'use e.g. 2');
  checkFixedPoint('revBiFPN', options.fixedPoint);
  const classes = options.classes ?? 1000;
  if (!Number.isInteger(classes) || classes < 1) bad('classes', `must be a positive integer (got ${classes})`, 'pass the number of classes');
  const dropout = options.dropout ?? 0.2;
  if (!(dropout >= 0 && dropout < 1)) bad('dropout', `must be in [0, 1) (got ${dropout})`, 'use 0 for none');
  const dropPath = options.dropPath ?? 0;
  if (!(dropPath >= 0 && dropPath < 1)) bad('dropPath', `must be in [0, 1) (got ${dropPath})`, 'use 0 to turn stochastic depth off');
  const norm = options.norm ?? 'batch';
  if (!NORM_KINDS.includes(norm)) bad('norm', `is '${String(norm)}'`, `use one of ${NORM_KINDS.join(', ')}`);
  const activation = options.activation ?? 'hardswish';
  if (!ACTIVATIONS.includes(activation)) bad('activation', `is '${String(activation)}'`, `use one of ${ACTIVATIONS.join(', ')}`);
  if (options.groups !== undefined && !positiveInt(options.groups)) bad('groups', `must be a positive integer (got ${options.groups})`, 'use a divisor of every channel count (default 8)');
  if (options.epsilon !== undefined && !(options.epsilon > 0)) bad('epsilon', `must be > 0 (got ${options.epsilon})`, 'use e.g. 1e-3 (the default)');
  if (options.momentum !== undefined && !(options.momentum >= 0 && options.momentum <= 1)) bad('momentum', `must be in [0, 1] (got ${options.momentum})`, 'use e.g. 0.9 (the default; PyTorch momentum 0.1 is TF.js 0.9)');
  if (options.seed !== undefined && !Number.isInteger(options.seed)) bad('seed', `must be an integer (got ${options.seed})`, 'use e.g. 1');
  return {
    variant,
    inputSize,
    inputChannels,
    extensions,
    streams: channels.map((c, i) => ({ channels: c, kernel: kernels[i], pad: pads[i], expandRatio: expandRatios[i], seRatio: seRatios[i] })),
    neckChannels,
    headChannels,
    classes,
    dropout,
    settings: {
      dims: 2,
      norm,
      groups: options.groups,
      activation,
      epsilon: options.epsilon,
      momentum: options.momentum,
      dropPath,
      zeroInitLastGamma: options.zeroInitLastGamma ?? false,
      fixedPoint: options.fixedPoint ?? DEFAULT_FRACTION_BITS,
    },
  };
}

/**
 * RevBiFPN (docs/techniques.md §2.4) as a classifier: channel tiling and space-to-depth
 * by 4, then for k = 1 .. L-1 two per-stream reversible blocks and a growing RevSilo,
 * then E extensions (two per-stream blocks and a RevSilo), then the neck and the head.
 * Every reversible unit is one segment with `inverse` and one-pass `backward`; the
 * `revsilo()` plugin plans them `invert`. Scaled-down variants are one option away
 * (`width`, `streams`, `extensions`, `inputSize`).
 */
export function revBiFPN(options: RevBiFPNOptions = {}): RevBiFPNModel {
  const config = resolveRevBiFPN(options);
  const prefix = options.name ?? 'revbifpn';
  const seed = options.seed ?? 1;
  const { streams, settings } = config;
  const L = streams.length;
  const layers: ModuleLayer[] = [];
  const layer = (name: string, module: string, moduleOptions: Record<string, unknown>) => {
    const l = new ModuleLayer({ name: uniqueLayerName(`${prefix}_${name}`), module, options: { ...moduleOptions, name: `${prefix}_${name}` }, seed: seed + 10_000 * layers.length });
    layers.push(l);
    return l;
  };
  const input = tf.input({ shape: [config.inputSize, config.inputSize, config.inputChannels], name: uniqueLayerName(`${prefix}_input`) });
  const apply = (l: ModuleLayer, xs: tf.SymbolicTensor[]): tf.SymbolicTensor[] => {
    const out = l.apply(xs.length === 1 ? xs[0] : xs) as tf.SymbolicTensor | tf.SymbolicTensor[];
    return Array.isArray(out) ? out : [out];
  };
  let h = apply(layer('tile', 'tileChannels', { channels: streams[0].channels / 16 }), [input]);
  h = apply(layer('stem', 'spaceToDepth', { block: 4 }), h);
  for (let k = 1; k < L; k++) {
    for (let b = 0; b < 2; b++) h = apply(layer(`grow${k}_blocks${b}`, 'streamBlocks', { ...settings, streams: streams.slice(0, k) }), h);
    h = apply(layer(`grow${k}_silo`, 'revSilo', { ...settings, streams: streams.slice(0, k), grow: streams[k] }), h);
  }
  for (let e = 0; e < config.extensions; e++) {
    for (let b = 0; b < 2; b++) h = apply(layer(`ext${e}_blocks${b}`, 'streamBlocks', { ...settings, streams }), h);
    if (L > 1) h = apply(layer(`ext${e}_silo`, 'revSilo', { ...settings, streams }), h);
  }
  h = apply(layer('neck', 'neck', { ...settings, streams, neckChannels: config.neckChannels }), h);
  const logits = apply(layer('head', 'head', { ...settings, streams, neckChannels: config.neckChannels, headChannels: config.headChannels, classes: config.classes, dropout: config.dropout }), h);
  const layersModel = tf.model({ inputs: input, outputs: logits[0], name: uniqueLayerName(prefix) });
  const segments = layers.map((l) => l.module);
  return {
    config,
    layersModel,
    segments,
    inputShape: [config.inputSize, config.inputSize, config.inputChannels],
    outputShape: [config.classes],
    stored: () => ({ segments: segments.map(storedPiece), layersModel, inputShape: [config.inputSize, config.inputSize, config.inputChannels], outputShape: [config.classes] }),
    dispose: () => layersModel.dispose(),
  };
}
