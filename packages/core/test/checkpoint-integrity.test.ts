import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { CHECKPOINT_FORMAT_VERSION, Trainer, type Manifest } from '../src';
import { blobs, checkpointOptions, tinyMlp, tmpDir, useBackend, rejected as errorOf } from './fixtures';


describe('checkpoint checksums', () => {
  useBackend('cpu');
  const options = checkpointOptions;
  const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));

  /** A saved run: its folder, the checkpoint's files and the weights it holds. */
  async function saved() {
    const dir = tmpDir();
    const data = blobs(16);
    const trainer = new Trainer(options());
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    await trainer.save(dir);
    const expected = weights(trainer);
    trainer.dispose();
    data.dispose();
    const ckpt = path.join(dir, 'step-2');
    const manifestFile = path.join(ckpt, 'manifest.json');
    const binFile = path.join(ckpt, 'tensors.bin');
    return { dir, manifestFile, binFile, expected, manifest: JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as Manifest };
  }
  /** Overwrites the bytes of tensor `ref` in tensors.bin, at element `at`. */
  function overwrite(binFile: string, m: Manifest, ref: number, at: number, bytes: Buffer): void {
    const bin = fs.readFileSync(binFile);
    bytes.copy(bin, m.tensors[ref].offset + 4 * at);
    fs.writeFileSync(binFile, bin);
  }

  it('writes format version 2 with a SHA-256 per tensor', async () => {
    const { manifest } = await saved();
    expect(CHECKPOINT_FORMAT_VERSION).to.equal(2);
    expect(manifest.formatVersion).to.equal(2);
    expect(manifest.tensors.length).to.be.greaterThan(0);
    for (const e of manifest.tensors) expect(e.sha256).to.match(/^[0-9a-f]{64}$/);
  });

  it('a flipped byte in a weight is a CHECKPOINT error naming the variable and the fix, and the model is left alone', async () => {
    const { dir, binFile, manifest } = await saved();
    const v = manifest.variables[2];
    const bin = fs.readFileSync(binFile);
    bin[manifest.tensors[v.ref.$tensor].offset + 5] ^= 0x10;
    fs.writeFileSync(binFile, bin);
    const model = tinyMlp(5);
    const before = model.getWeights().map((w) => Array.from(w.dataSync()));
    const err = await errorOf(Trainer.resume(dir, options({ model })));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.contain(`model variable '${v.name}'`);
    expect(err.message).to.match(/do not match their checksum; the checkpoint is corrupt.*Resume from an older checkpoint \(write its step-\* folder name into LATEST\)/);
    expect(model.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(before);
  });

  it('a weight overwritten with NaN is refused', async () => {
    const { dir, binFile, manifest } = await saved();
    const v = manifest.variables[0];
    const nan = Buffer.alloc(4);
    nan.writeFloatLE(NaN);
    overwrite(binFile, manifest, v.ref.$tensor, 3, nan);
    expect((await errorOf(Trainer.resume(dir, options()))).message).to.contain(`model variable '${v.name}'`);
  });

  it('names a corrupt optimizer state tensor and a corrupt plugin tensor', async () => {
    let run = await saved();
    const chain = run.manifest.optimizer as Extract<Manifest['optimizer'], { kind: 'chain' }>;
    const velocity = (chain.state as { momentum: { velocity: Record<string, { $tensor: number }> } }).momentum.velocity;
    const [param, ref] = Object.entries(velocity)[1];
    overwrite(run.binFile, run.manifest, ref.$tensor, 0, Buffer.from([1, 2, 3, 4]));
    expect((await errorOf(Trainer.resume(run.dir, options()))).message).to.contain(`optimizer state 'momentum.velocity.${param}'`);

    run = await saved();
    const sum = run.manifest.pluginState.counter.tensors!.sum;
    overwrite(run.binFile, run.manifest, sum.$tensor, 0, Buffer.from([1, 2, 3, 4]));
    expect((await errorOf(Trainer.resume(run.dir, options()))).message).to.contain("plugin 'counter' state tensor 'sum'");
  });

  it('a version 2 manifest whose tensor has no checksum is refused', async () => {
    const { dir, manifestFile, manifest } = await saved();
    delete manifest.tensors[1].sha256;
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    expect((await errorOf(Trainer.resume(dir, options()))).message).to.match(/a tensor entry has no checksum; the checkpoint is corrupt/);
  });

  it('a damaged or hand-edited manifest field is refused as a corrupt checkpoint naming manifest.json and the field; the model is unchanged', async () => {
    type Edit = (m: Record<string, any>) => void;
    const cases: [field: string, edit: Edit][] = [
      ['variables[0].shape', (m) => (m.variables[0].shape = '5,8')],
      ['variables[0].ref', (m) => delete m.variables[0].ref],
      ['variables[0]', (m) => (m.variables[0] = null)],
      ['variables[0].ref.$tensor', (m) => (m.variables[0].ref.$tensor = 1.5)],
      ['tensors[0].shape', (m) => (m.tensors[0].shape = '2,8')],
      ['pluginState.counter', (m) => (m.pluginState.counter = null)],
      ['pluginState.counter.tensors', (m) => (m.pluginState.counter.tensors = 'x')],
      ['optimizer.kind', (m) => (m.optimizer.kind = 'bogus')],
      ['optimizer.names', (m) => (m.optimizer.names = 'sgd')],
      ['optimizer.state', (m) => (m.optimizer.state = null)],
      ['plugins[0]', (m) => (m.plugins = [42])],
      ['formatVersion', (m) => (m.formatVersion = String(m.formatVersion))],
      ['position.epochSoFar.sums', (m) => (m.position.epochSoFar = { batchSize: 8, shuffle: true, names: ['loss'], sums: [], samples: 8 })],
    ];
    for (const [field, edit] of cases) {
      const { dir, manifestFile, manifest } = await saved();
      edit(manifest as unknown as Record<string, unknown>);
      fs.writeFileSync(manifestFile, JSON.stringify(manifest));
      const model = tinyMlp(5);
      const before = model.getWeights().map((w) => Array.from(w.dataSync()));
      const err = await errorOf(Trainer.resume(dir, options({ model })));
      expect(err.code, field).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message, field).to.contain(`cannot resume from '${path.join(dir, 'step-2')}': manifest.json field '${field}' is `);
      expect(err.message, field).to.contain('the checkpoint is corrupt (damaged or edited)');
      expect(model.getWeights().map((w) => Array.from(w.dataSync())), field).to.deep.equal(before);
    }
  });

  it('a hand-edited negative step, skipped count, seed or position is refused at resume, before training on from it', async () => {
    type Edit = (m: Record<string, any>) => void;
    const midEpoch = { batchSize: 8, shuffle: true, names: ['loss'], sums: [1], samples: 8, dataSize: 16 };
    const cases: [field: string, edit: Edit][] = [
      ['step', (m) => (m.step = -5)],
      ['skipped', (m) => (m.skipped = -1)],
      ['seed', (m) => (m.seed = -2)],
      ['position.epoch', (m) => (m.position.epoch = -3)],
      ['position.batch', (m) => (m.position.batch = -1)],
      ['position.epochSoFar.batchSize', (m) => (m.position = { epoch: 1, batch: 1, epochSoFar: { ...midEpoch, batchSize: 0 } })],
      ['position.epochSoFar.samples', (m) => (m.position = { epoch: 1, batch: 1, epochSoFar: { ...midEpoch, samples: -8 } })],
      ['position.epochSoFar.dataSize', (m) => (m.position = { epoch: 1, batch: 1, epochSoFar: { ...midEpoch, dataSize: -16 } })],
    ];
    for (const [field, edit] of cases) {
      const { dir, manifestFile, manifest } = await saved();
      edit(manifest as unknown as Record<string, unknown>);
      fs.writeFileSync(manifestFile, JSON.stringify(manifest));
      const err = await errorOf(Trainer.resume(dir, options()));
      expect(err.code, field).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message, field).to.match(new RegExp(`manifest\\.json field '${field.replace(/\./g, '\\.')}' is malformed: expected an integer >= [01] \\(it holds -?\\d+\\)`));
    }
  });

  it('a version 1 checkpoint (no checksums) still resumes, with a warning that it is unverified', async () => {
    const { dir, manifestFile, manifest, expected } = await saved();
    const v1 = { ...manifest, formatVersion: 1, tensors: manifest.tensors.map(({ shape, dtype, offset }) => ({ shape, dtype, offset })) };
    fs.writeFileSync(manifestFile, JSON.stringify(v1));
    const warnings: string[] = [];
    const r = await Trainer.resume(dir, options({ logger: { info() {}, warn: (m) => warnings.push(m) } }));
    expect(r.step).to.equal(2);
    expect(weights(r)).to.deep.equal(expected);
    expect(warnings.join('\n')).to.match(/format 1 checkpoint without checksums: its tensors cannot be verified\. Save it again/);
    r.dispose();
  });
});
