import { z } from 'zod';
import { ADAPTER_NAME } from './config';

// The shape of adapter_config.json. The weights' sha256 covers adapter_weights.bin, not the
// config, so an edited or damaged config is caught here, before any field is used: a field
// of the wrong type fails naming it instead of as a TypeError, and a weights table that does
// not tile the weights file (an edited offset, dtype or shape) is refused instead of loading
// the wrong bytes. Loose objects: fields a later version adds are ignored.

const int = z.number({ error: 'expected an integer' }).int({ error: 'expected an integer' });
const count = int.min(0, { error: 'expected an integer >= 0' });
const paths = z.array(z.string());

export const adapterFileSchema = z.looseObject({
  modelKind: z.literal('segments').optional(),
  adapter: z.string().regex(ADAPTER_NAME, { error: 'expected an adapter name (letters, digits, _ and -)' }),
  spec: z.looseObject({
    rank: int.min(1, { error: 'expected an integer >= 1' }),
    alpha: z.number().positive(),
    dropout: z.number().min(0).lt(1),
    rsLora: z.boolean(),
    init: z.enum(['kaiming', 'gaussian']),
  }),
  targets: paths.min(1, { error: 'expected at least one target' }),
  modulesToSave: paths,
  statistics: paths.optional(),
  base: z.looseObject({
    structureHash: z.string(),
    layers: z.array(z.looseObject({ path: z.string(), className: z.string(), shapes: z.array(z.array(count)) })),
    samples: z.record(z.string(), z.array(z.number())),
  }),
  weights: z.array(z.looseObject({ name: z.string(), shape: z.array(count), dtype: z.literal('float32'), offset: count })),
  weightsFile: z.string(),
  weightsBytes: count,
  weightsSha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected a hex sha256' }),
});

/** `weights[0].offset` for zod's path ['weights', 0, 'offset']. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}
