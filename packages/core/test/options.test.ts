import { expect } from 'chai';
import { z } from 'zod';
import { knownKeys, parseOptions } from '../src/options';

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
