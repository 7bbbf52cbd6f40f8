import { z } from 'zod';

// The shape of manifest.json, checked before any entry is used: a damaged or hand-edited
// field then fails as a corrupt checkpoint naming the field, not as a TypeError (or a
// misleading mismatch) deep in the restore. Loose objects: fields a later version adds
// are ignored, as before. Ranges that depend on other fields are checked by checkManifest.

const int = z.number({ error: 'expected an integer' }).int({ error: 'expected an integer' });
const index = int.min(0, { error: 'expected an integer >= 0' });
const shape = z.array(index);
const tensorRef = z.looseObject({ $tensor: index });
const namedRef = z.looseObject({ name: z.string(), ref: tensorRef });

// Counters and positions are never negative (a hand-edited -3 would train more epochs, a
// negative step would feed schedules steps they never see).
const epochSoFar = z
  .looseObject({
    batchSize: int.min(1, { error: 'expected an integer >= 1' }),
    shuffle: z.boolean(),
    names: z.array(z.string()),
    sums: z.array(z.number().nullable()),
    samples: index,
    dataSize: index.optional(),
    carriedRead: index.optional(),
  })
  .refine((e) => e.names.length === e.sums.length, { message: 'names and sums differ in length', path: ['sums'] });

const chainOptimizer = z.looseObject({
  kind: z.literal('chain'),
  names: z.array(z.string()),
  suppliedBy: z.record(z.string(), z.array(z.string())).optional(),
  state: z.record(z.string(), z.unknown()),
});

const blackBoxOptimizer = z.looseObject({
  kind: z.literal('optimizer'),
  className: z.string(),
  weights: z.array(namedRef),
  fields: z.array(namedRef).optional(),
});

export const manifestSchema = z.looseObject({
  step: index,
  skipped: index,
  trainOnBatchCalls: index.optional(),
  seed: index,
  position: z.looseObject({ epoch: index, batch: index, epochSoFar: epochSoFar.optional() }),
  plugins: z.array(z.string()),
  variables: z.array(z.looseObject({ name: z.string(), shape, ref: tensorRef })),
  optimizer: z.discriminatedUnion('kind', [chainOptimizer, blackBoxOptimizer]),
  pluginState: z.record(z.string(), z.looseObject({ json: z.unknown().optional(), tensors: z.record(z.string(), tensorRef).optional() })),
  tensors: z.array(z.looseObject({ shape, dtype: z.enum(['float32', 'int32', 'bool']), offset: index, sha256: z.string().optional() })),
});

/** `variables[0].ref.$tensor` for zod's path ['variables', 0, 'ref', '$tensor']. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

/** A value as it stands in the file, short enough for an error message. */
export function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
