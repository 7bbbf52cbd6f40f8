import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, parseOptions, TapfitError, type Segment, type TrainableModel } from '@tapfit/core';
import { z } from 'zod';
import { carriedCoupling, storedPiece } from '../blocks/revbifpn-blocks';
import { checkFixedPoint, DEFAULT_FRACTION_BITS } from '../reversible/fixed-point';
import type { ReversibleSegment } from '../reversible/reversible-segment';
import { ModuleLayer, uniqueLayerName } from '../layers/module-layer';
import '../layers/modules';
import { ACTIVATIONS, type ActivationName } from '../ops/activations';
import { DEPTHWISE_3D_METHODS, type Depthwise3dMethod } from '../ops/conv';
import { NORM_KINDS, type NormKind } from '../ops/norm';
import { carriedModule } from './unet-parts';

export interface ReversibleUNet3dOptions {
  /** Resolutions (docs/techniques.md §3.4). Default 4. */
  levels?: number | undefined;
  /** Reversible MBConv blocks per level, in the encoder and in the decoder. Default 2. */
  blocksPerLevel?: number | undefined;
  /** Channels at the top level, doubling per level. Default 16. */
  baseChannels?: number | undefined;
  /** Expansion ratio of the blocks' MBConvs. Default 6. */
  expandRatio?: number | undefined;
  /** Default 'instance' (batch-independent: 3-D batches are tiny). */
  norm?: NormKind | undefined;
  /** Groups for norm 'group'. Default 8. */
  groups?: number | undefined;
  /** Default 'relu6'. */
  activation?: ActivationName | undefined;
  /** Depthwise kernel of the blocks. Default 3. */
  kernel?: number | undefined;
  /** Input channels (4 MRI modalities in BraTS). Default 1. */
  inputChannels?: number | undefined;
  /** Segmentation classes (background included). Default 2. */
  classes?: number | undefined;
  /** Cubic input size, if fixed (the layers model's input shape); any size divisible by 2^(levels - 1) works otherwise. */
  inputSize?: number | undefined;
  /** Stochastic-depth rate inside the blocks (replayed). Default 0. */
  dropPath?: number | undefined;
  depthwise3d?: Depthwise3dMethod | undefined;
  /**
   * Fraction bits of the blocks' exact fixed-point arithmetic (reversible/fixed-point.ts):
   * rebuilt activations equal the forward's bit for bit, so training matches the stored
   * twin exactly. 0: plain float32. Default 16.
   */
  fixedPoint?: number | undefined;
  /** Default 1. */
  seed?: number | undefined;
  /** Prefix of segment and layer names. Default 'unet'. */
  name?: string | undefined;
}

/** The reversible 3-D U-Net: the trainer's model (segments), its tfjs-layers form, and the stored twin. */
export interface ReversibleUNet3d extends TrainableModel {
  readonly layersModel: tf.LayersModel;
  readonly segments: readonly Segment[];
  readonly options: Required<Omit<ReversibleUNet3dOptions, 'inputSize' | 'depthwise3d'>> & Pick<ReversibleUNet3dOptions, 'inputSize' | 'depthwise3d'>;
  /** Channels at each level. */
  readonly channels: readonly number[];
  /** The same network (same variables) with no segment invertible: the non-reversible twin. */
  stored(): TrainableModel;
  dispose(): void;
}

/**
 * The reversible MBConv 3-D U-Net (docs/techniques.md §3.2): a stem (3x3x3 conv), then at
 * each level a reversible sequence of `blocksPerLevel` MBConv couplings, a 3x3x3 stride-2
 * convolution doubling the channels; back up through 2x2x2 transposed convolutions,
 * skip concatenation and a 1x1x1 convolution, each followed by the level's decoder
 * sequence; a 1x1x1 segmentation head. The bottom level has one sequence. Blocks are
 * segments with `inverse` and one-pass `backward` (skips pass through them); the ordinary
 * layers keep their inputs. So blocks add no activation memory under `invert`; levels do.
 */
export function reversibleUNet3d(options: ReversibleUNet3dOptions = {}): ReversibleUNet3d {
  const o = resolveUNet(options);
  const prefix = o.name;
  const channels = Array.from({ length: o.levels }, (_, l) => o.baseChannels * 2 ** l);
  const layers: ModuleLayer[] = [];
  const segments: Segment[] = [];
  const layer = (name: string, module: string, moduleOptions: Record<string, unknown>) => {
    const l = new ModuleLayer({ name: uniqueLayerName(`${prefix}_${name}`), module, options: { ...moduleOptions, name: `${prefix}_${name}` }, seed: o.seed + 10_000 * layers.length });
    layers.push(l);
    return l;
  };
  const apply = (l: ModuleLayer, xs: tf.SymbolicTensor[]): tf.SymbolicTensor => l.apply(xs.length === 1 ? xs[0] : xs) as tf.SymbolicTensor;
  const settings = { norm: o.norm, groups: o.groups, activation: o.activation };
  const blockOptions = (c: number) => ({ ...settings, dims: 3, streams: [{ channels: c, kernel: o.kernel, expandRatio: o.expandRatio, seRatio: 0 }], dropPath: o.dropPath, depthwise3d: options.depthwise3d, fixedPoint: o.fixedPoint });
  const sequence = (h: tf.SymbolicTensor, where: string, level: number, carried: number): tf.SymbolicTensor => {
    for (let b = 0; b < o.blocksPerLevel; b++) {
      const l = layer(`${where}${level}_block${b}`, 'streamBlocks', blockOptions(channels[level]));
      h = apply(l, [h]);
      segments.push(carriedCoupling(l.module as ReversibleSegment, carried));
    }
    return h;
  };
  const size = o.inputSize ?? null;
  const input = tf.input({ shape: [size, size, size, o.inputChannels], name: uniqueLayerName(`${prefix}_input`) });
  const stem = layer('stem', 'unetStem', { ...settings, inChannels: o.inputChannels, outChannels: channels[0] });
  let h = apply(stem, [input]);
  segments.push(carriedModule(stem.module, 0));
  const skips: tf.SymbolicTensor[] = [];
  for (let l = 0; l < o.levels; l++) {
    h = sequence(h, 'enc', l, l);
    if (l === o.levels - 1) break;
    skips.push(h);
    const down = layer(`down${l}`, 'unetDown', { ...settings, inChannels: channels[l], outChannels: channels[l + 1] });
    h = apply(down, [h]);
    segments.push(carriedModule(down.module, l, true));
  }
  for (let l = o.levels - 2; l >= 0; l--) {
    const up = layer(`up${l}`, 'unetUp', { ...settings, inChannels: channels[l + 1], outChannels: channels[l] });
    h = apply(up, [skips[l], h]);
    segments.push(carriedModule(up.module, l));
    h = sequence(h, 'dec', l, l);
  }
  const head = layer('head', 'unetHead', { inChannels: channels[0], classes: o.classes });
  const logits = apply(head, [h]);
  segments.push(carriedModule(head.module, 0));
  const layersModel = tf.model({ inputs: input, outputs: logits, name: uniqueLayerName(prefix) });
  const shapes = { inputShape: [size, size, size, o.inputChannels], outputShape: [size, size, size, o.classes] };
  return {
    ...shapes,
    options: o,
    channels,
    layersModel,
    segments,
    stored: () => ({ segments: segments.map(storedPiece), layersModel, ...shapes }),
    dispose: () => layersModel.dispose(),
  };
}

// Every key, typed: a misspelt option (`basechannels: 4`) would otherwise build the default
// U-Net silently. Ranges are checked in resolveUNet, where each error can name its fix.
const number = (what: string) => z.number({ error: `must be ${what}` }).optional();
const optionsSchema = z.strictObject(
  {
    levels: number('an integer >= 1 (e.g. 4)'),
    blocksPerLevel: number('an integer >= 0 (e.g. 2)'),
    baseChannels: number('an even integer >= 2 (e.g. 16)'),
    expandRatio: number('a number > 0 (e.g. 6)'),
    norm: z.unknown().optional(),
    groups: number('a positive integer (the groups of group norm)'),
    activation: z.unknown().optional(),
    kernel: number('an odd positive integer (3, 5, ...)'),
    inputChannels: number('a positive integer (e.g. 4 for BraTS)'),
    classes: number('an integer >= 2 (background included)'),
    inputSize: number('a whole number divisible by 2^(levels - 1)'),
    dropPath: number('a number in [0, 1) (0: no stochastic depth)'),
    depthwise3d: z.unknown().optional(),
    fixedPoint: number('an integer from 0 to 23 (fraction bits; 0 for plain float32)'),
    seed: number('an integer (the seed of the weights)'),
    name: z.string({ error: "must be a non-empty string (the prefix of segment and layer names, e.g. 'unet')" }).min(1, "must be a non-empty string (the prefix of segment and layer names, e.g. 'unet')").optional(),
  } satisfies Record<keyof ReversibleUNet3dOptions, z.ZodType>,
  { error: 'options must be an object, e.g. reversibleUNet3d({ levels: 4 })' },
);

function resolveUNet(options: ReversibleUNet3dOptions): ReversibleUNet3d['options'] {
  parseOptions('reversibleUNet3d', optionsSchema, options);
  // Option by option with ??, so an explicit undefined (a spread of partial settings) keeps the default.
  const o = {
    levels: options.levels ?? 4,
    blocksPerLevel: options.blocksPerLevel ?? 2,
    baseChannels: options.baseChannels ?? 16,
    expandRatio: options.expandRatio ?? 6,
    norm: options.norm ?? ('instance' as NormKind),
    groups: options.groups ?? 8,
    activation: options.activation ?? ('relu6' as ActivationName),
    kernel: options.kernel ?? 3,
    inputChannels: options.inputChannels ?? 1,
    classes: options.classes ?? 2,
    dropPath: options.dropPath ?? 0,
    fixedPoint: options.fixedPoint ?? DEFAULT_FRACTION_BITS,
    seed: options.seed ?? 1,
    name: options.name ?? 'unet',
    inputSize: options.inputSize,
    depthwise3d: options.depthwise3d,
  };
  const bad = (option: string, why: string, fix: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `reversibleUNet3d: option '${option}' ${why}; ${fix}.`);
  };
  const positive = (name: keyof typeof o, min = 1) => {
    const v = o[name] as number;
    if (!Number.isInteger(v) || v < min) bad(name, `must be an integer >= ${min} (got ${v})`, `pass a whole number >= ${min}`);
  };
  positive('levels');
  positive('blocksPerLevel', 0);
  positive('baseChannels', 2);
  positive('inputChannels');
  positive('classes', 2);
  checkFixedPoint('reversibleUNet3d', o.fixedPoint);
  if (o.baseChannels % 2 !== 0) bad('baseChannels', `is ${o.baseChannels}, but a coupling splits the channels into two equal halves`, 'use an even number');
  if (!(o.expandRatio > 0)) bad('expandRatio', `must be > 0 (got ${o.expandRatio})`, 'use e.g. 6');
  if (!NORM_KINDS.includes(o.norm)) bad('norm', `is '${String(o.norm)}'`, `use one of ${NORM_KINDS.join(', ')}`);
  if (!ACTIVATIONS.includes(o.activation)) bad('activation', `is '${String(o.activation)}'`, `use one of ${ACTIVATIONS.join(', ')}`);
  positive('groups');
  if (!(Number.isInteger(o.kernel) && o.kernel >= 1 && o.kernel % 2 === 1)) bad('kernel', `must be an odd positive integer (got ${o.kernel})`, 'use 3, 5, 7, ...');
  if (!(o.dropPath >= 0 && o.dropPath < 1)) bad('dropPath', `must be in [0, 1) (got ${o.dropPath})`, 'use 0 to turn stochastic depth off');
  if (o.depthwise3d !== undefined && !DEPTHWISE_3D_METHODS.includes(o.depthwise3d)) bad('depthwise3d', `is '${String(o.depthwise3d)}'`, `use one of ${DEPTHWISE_3D_METHODS.join(', ')}`);
  if (!Number.isInteger(o.seed)) bad('seed', `must be an integer (got ${o.seed})`, 'use e.g. 1');
  if (o.inputSize !== undefined && (!Number.isInteger(o.inputSize) || o.inputSize % 2 ** (o.levels - 1) !== 0)) {
    bad('inputSize', `is ${o.inputSize}, which does not halve ${o.levels - 1} times`, `use a multiple of ${2 ** (o.levels - 1)}`);
  }
  return o;
}
