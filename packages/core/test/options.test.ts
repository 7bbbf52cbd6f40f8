import { expect } from 'chai';
import { z } from 'zod';
import { knownKeys, parseOptions } from '../src/options';
import { SilentLogger, type TrainerOptions } from '../src';
import { blobs, rejected, thrown, tinyTrainer, useBackend } from './fixtures';

// A config-like schema: strict objects under a discriminated union and inside an array of a union.
const schema = z.strictObject({
  optimizer: z.discriminatedUnion('name', [
    z.strictObject({ name: z.literal('sgd'), lr: z.number(), momentum: z.number().optional() }),
    z.strictObject({ name: z.literal('adam'), lr: z.number(), b1: z.number().optional() }),
  ]),
  plugins: z.array(z.union([z.string(), z.strictObject({ package: z.string(), options: z.record(z.string(), z.unknown()).optional() })])).default([]),
});

const messageOf = (value: unknown): string => {
  try {
    parseOptions('config', schema, value);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

describe('parseOptions: unknown keys name the nearest valid one', () => {
  it('inside a discriminated union, against the member the discriminator picks', () => {
    expect(messageOf({ optimizer: { name: 'sgd', lr: 0.1, momentun: 0.9 } })).to.equal("config: unknown option(s) 'optimizer.momentun' (did you mean 'momentum'?).");
    expect(messageOf({ optimizer: { name: 'adam', lr: 0.1, b_1: 0.9 } })).to.equal("config: unknown option(s) 'optimizer.b_1' (did you mean 'b1'?).");
  });

  it('inside an array of a union with one object member', () => {
    expect(messageOf({ optimizer: { name: 'sgd', lr: 1 }, plugins: ['x', { package: 'y', optoins: {} }] })).to.equal("config: unknown option(s) 'plugins.1.optoins' (did you mean 'options'?).");
  });

  it('knownKeys follows arrays and picks the union member by the value', () => {
    expect(knownKeys(schema, ['optimizer'], { optimizer: { name: 'adam' } })).to.deep.equal(['name', 'lr', 'b1']);
    expect(knownKeys(schema, ['plugins', 0], { plugins: [{}] })).to.deep.equal(['package', 'options']);
    expect(knownKeys(schema, [])).to.deep.equal(['optimizer', 'plugins']);
  });
});

describe('Trainer and evaluate options: a misspelt or out-of-range option is refused, not ignored', () => {
  useBackend('cpu');

  it("new Trainer({ plugin: [...] }) is refused naming 'plugins' (it trained without the plugin); every documented key is accepted", () => {
    for (const [typo, right] of [['plugin', 'plugins'], ['metric', 'metrics'], ['nonfinite', 'nonFinite'], ['memorybudget', 'memoryBudget']]) {
      const err = thrown(() => tinyTrainer({ [typo]: [] } as Partial<TrainerOptions>));
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.equal(`trainer: unknown option(s) '${typo}' (did you mean '${right}'?).`);
    }
    const t = tinyTrainer({ plugins: [], metrics: ['accuracy'], nonFinite: 'skip', constraints: 'ignore', seed: 3, logger: new SilentLogger(), memoryBudget: undefined });
    t.dispose();
  });

  it('evaluate(data, { batchSize }) refuses 0, negative, fractional and misspelt options (batchSize 0 looped for ever)', async () => {
    const t = tinyTrainer();
    const data = blobs(16);
    for (const [options, message] of [
      [{ batchSize: 0 }, /evaluate: option 'batchSize' .*\(got 0\)/],
      [{ batchSize: -1 }, /option 'batchSize'/],
      [{ batchSize: 2.5 }, /option 'batchSize'/],
      [{ batchsize: 8 }, /unknown option\(s\) 'batchsize' \(did you mean 'batchSize'\?\)/],
    ] as const) {
      const err = await rejected(t.evaluate(data, options as { batchSize?: number }));
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.match(message);
    }
    expect(Object.keys(await t.evaluate(data))).to.deep.equal(['loss']);
    t.dispose();
    data.dispose();
  });
});
