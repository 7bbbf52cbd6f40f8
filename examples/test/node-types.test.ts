import { expect } from 'chai';
import { compileConsumer } from './public-declarations';

// The declarations use Node's types (Buffer in Checkpointer, worker_threads' MessagePort in
// the pipeline's Transport). A consumer project that does not list "node" in its `types`
// still gets them through the packages' own reference to @types/node (an optional peer
// dependency), instead of Buffer silently becoming `any` under skipLibCheck.

describe("Node's types in the declarations", function () {
  this.timeout(120_000);

  it('resolve in a consumer with `types: []`: Buffer and MessagePort are checked, not any', () => {
    const code = [
      "import type { Checkpointer } from '@tapfit/core';",
      "import type { Transport } from '@tapfit/plugin-pipeline';",
      "type Saved = Parameters<Checkpointer['save']>[2]['tensors'];",
      "type Loaded = Awaited<ReturnType<Checkpointer['load']>>['tensors'];",
      "type Port = ReturnType<Transport['pair']>['upstream'];",
      // Each of these is refused when the type is Node's, accepted when it fell back to any.
      "export const saved: Saved = 'not a Buffer';",
      "export const loaded: Loaded = 42;",
      "export const port: Port = 'not a MessagePort';",
      '',
    ].join('\n');
    const errors = compileConsumer('node-types', code, { types: [], lib: ['lib.es2022.d.ts'] });
    expect(errors.map((e) => e.split(':').slice(0, 2).join(':')), errors.join('\n')).to.deep.equal(['consumer.ts:6', 'consumer.ts:7', 'consumer.ts:8']);
    expect(errors.join('\n')).to.contain("not assignable to type 'Buffer").and.contain("not assignable to type 'MessagePort");
  });
});
