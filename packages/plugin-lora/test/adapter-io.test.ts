import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { ADAPTER_VERSION, applyLora, LoraModel, readAdapter, type LoraOptions } from '../src';
import { mlp, perturbAdapters, rejected, sameValues, useCpu } from './helpers';

describe('adapter-only save and load', () => {
  useCpu();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function trained(seed = 1, opts: Partial<LoraOptions> = {}) {
    const base = mlp(seed);
    const lora = applyLora(base, { targets: 'all-linear', rank: 2, alpha: 3, seed: 5, ...opts });
    perturbAdapters(lora.model, 3, 0.5);
    return { base, lora };
  }

  it('round trip: a fresh base plus the adapter reproduces the outputs exactly', async () => {
    const { base, lora } = trained();
    const out = path.join(dir, 'adapter');
    const file = await lora.saveAdapter(out);
    expect(fs.readdirSync(out).sort()).to.deep.equal(['adapter_config.json', 'adapter_weights.bin']); // no temp files left
    expect(file).to.include({ format: 'tapfit-lora-adapter', version: ADAPTER_VERSION, adapter: 'default' });
    expect(file.spec).to.deep.equal({ rank: 2, alpha: 3, dropout: 0, rsLora: false, init: 'kaiming' });
    expect(file.targets).to.deep.equal(['fc1', 'fc2']);
    // Only adapter weights: r*(6+12) + r*(12+10) floats.
    expect(file.weightsBytes).to.equal(4 * 2 * (6 + 12 + 12 + 10));

    const base2 = mlp(1); // same seeds: the same base weights, a different model object
    const loaded = await LoraModel.load(base2, out);
    const x = tf.randomNormal([5, 6], 0, 1, 'float32', 2);
    tf.tidy(() => {
      expect(sameValues(loaded.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    expect(loaded.layers[0].spec('default')).to.deep.equal(file.spec);
    tf.dispose(x);
    [loaded, base2, lora, base].forEach((m) => m.dispose());
  });

  it('saves and restores modulesToSave weights', async () => {
    const { base, lora } = trained(1, { modulesToSave: 'head' });
    const head = lora.model.getLayer('head');
    const w = tf.randomNormal(head.weights[0].shape as number[], 0, 1, 'float32', 7);
    head.weights[0].write(w);
    const file = await lora.saveAdapter(dir);
    expect(file.modulesToSave).to.deep.equal(['head']);
    const base2 = mlp(1);
    const loaded = await LoraModel.load(base2, dir);
    expect(sameValues(loaded.model.getLayer('head').weights[0].read(), w)).to.equal(true);
    expect(loaded.model.trainableWeights.map((v) => v.originalName)).to.include('head/kernel');
    tf.dispose(w);
    [loaded, base2, lora, base].forEach((m) => m.dispose());
  });

  it('refuses a different base model, naming what differs, and changes nothing', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    const other = mlp(42); // same architecture, other weights
    const target = applyLora(other, { targets: 'all-linear', rank: 2, alpha: 3 });
    const before = target.layers.map((l) => tf.clone(l.adapterWeights('default').A.read()));
    const err = await rejected(target.loadAdapter(dir));
    expect(err.message).to.match(/cannot load .* the base weights differ: 'fc1\/kernel' differs by up to .* the adapter was trained on another base model/);
    target.layers.forEach((l, i) => expect(sameValues(l.adapterWeights('default').A.read(), before[i])).to.equal(true));
    tf.dispose(before);
    [target, other, lora, base].forEach((m) => m.dispose());
  });

  it('compares every base weight, biases and layers without an adapter too, except modulesToSave', async () => {
    const { base, lora } = trained(1); // adapts fc1 and fc2; the head is frozen
    await lora.saveAdapter(dir);
    const withChanged = (layer: string, weight: number) => {
      const b = mlp(1);
      const w = b.getLayer(layer).weights[weight];
      const t = tf.tidy(() => tf.add(w.read(), 0.5));
      w.write(t);
      t.dispose();
      return b;
    };
    for (const [layer, weight, name] of [['fc1', 1, 'fc1/bias'], ['head', 0, 'head/kernel'], ['head', 1, 'head/bias']] as const) {
      const other = withChanged(layer, weight); // the adapted kernels are the saved base's
      const tensors = tf.memory().numTensors;
      const err = await rejected(LoraModel.load(other, dir));
      expect(err.message).to.match(new RegExp(`the base weights differ: '${name}' differs by up to .*; the adapter was trained on another base model`));
      expect(tf.memory().numTensors).to.equal(tensors);
      other.dispose();
    }
    // A modulesToSave layer is stored in full: its base values do not matter.
    const saving = trained(1, { modulesToSave: 'head' });
    const savedDir = path.join(dir, 'with-head');
    await saving.lora.saveAdapter(savedDir);
    const otherHead = withChanged('head', 0);
    const loaded = await LoraModel.load(otherHead, savedDir);
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 4);
    tf.tidy(() => {
      expect(sameValues(loaded.model.predict(x) as tf.Tensor, saving.lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose(x);
    [loaded, otherHead, saving.lora, saving.base, lora, base].forEach((m) => m.dispose());
  });

  it('does not compare running statistics (a frozen BatchNormalization updates them in training), but does its gamma', async () => {
    const make = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 5, inputShape: [4], name: 'fc1', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
          tf.layers.batchNormalization({ name: 'bn' }),
          tf.layers.dense({ units: 2, name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
        ],
      });
    const base = make();
    const lora = applyLora(base, { targets: 'fc1', rank: 2, seed: 1 });
    const file = await lora.saveAdapter(dir);
    expect(Object.keys(file.base.samples)).to.deep.equal(['fc1/kernel', 'fc1/bias', 'bn/gamma', 'bn/beta', 'head/kernel', 'head/bias']);
    const shift = (m: tf.LayersModel, weight: string) => {
      const w = m.getLayer('bn').weights.find((v) => v.originalName.endsWith(weight))!;
      const t = tf.tidy(() => tf.add(w.read(), 0.5));
      w.write(t);
      t.dispose();
    };
    const drifted = make();
    shift(drifted, 'moving_mean');
    const loaded = await LoraModel.load(drifted, dir);
    const otherGamma = make();
    shift(otherGamma, 'gamma');
    expect((await rejected(LoraModel.load(otherGamma, dir))).message).to.match(/'bn\/gamma' differs by up to/);
    [loaded, drifted, otherGamma, lora, base].forEach((m) => m.dispose());
  });

  it('LoRA on a BatchNorm model: the file carries the moving statistics training moved, so a fresh base plus the adapter predicts as the trained model', async () => {
    const make = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 5, inputShape: [4], name: 'fc1', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
          tf.layers.batchNormalization({ name: 'bn', momentum: 0.5 }),
          tf.layers.dense({ units: 2, name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
        ],
      });
    const base = make();
    const lora = applyLora(base, { targets: 'fc1', rank: 2, seed: 1 });
    lora.model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const x = tf.randomNormal([16, 4], 1, 2, 'float32', 3);
    const y = tf.randomNormal([16, 2], 0, 1, 'float32', 4);
    await lora.model.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0, shuffle: false });
    const stats = lora.model.getLayer('bn').weights.filter((w) => /moving_/.test(w.originalName));
    const fresh = make();
    const freshStats = fresh.getLayer('bn').weights.filter((w) => /moving_/.test(w.originalName));
    expect(stats.some((w, i) => !sameValues(w.read(), freshStats[i].read())), 'training moved the moving statistics').to.equal(true);

    const file = await lora.saveAdapter(dir);
    expect(file.statistics).to.deep.equal(['bn/moving_mean', 'bn/moving_variance']);
    const loaded = await LoraModel.load(fresh, dir);
    tf.tidy(() => {
      expect(sameValues(loaded.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor), 'predictions equal the trained model\'s').to.equal(true);
    });
    tf.dispose([x, y]);
    [loaded, fresh, lora, base].forEach((m) => m.dispose());
  });

  it('a non-trainable weight of a custom layer, whatever its name, is a statistic: stored and restored, not compared', async () => {
    // A layer with a running statistic not named moving_* (as OnlineNorm's mean, variance, u, v).
    class Shift extends tf.layers.Layer {
      static className = 'TestShift';
      private running?: tf.LayerVariable;
      override build(shape: tf.Shape | tf.Shape[]): void {
        this.running = this.addWeight('running', [(shape as tf.Shape)[1]!], 'float32', tf.initializers.zeros(), undefined, false);
        this.built = true;
      }
      override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
        return tf.tidy(() => tf.sub(Array.isArray(inputs) ? inputs[0] : inputs, this.running!.read()));
      }
    }
    tf.serialization.registerClass(Shift);
    const make = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 5, inputShape: [4], name: 'fc1', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
          new Shift({ name: 'shift' }),
          tf.layers.dense({ units: 2, name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
        ],
      });
    const base = make();
    const lora = applyLora(base, { targets: 'fc1', rank: 2, seed: 1 });
    perturbAdapters(lora.model);
    const running = lora.model.getLayer('shift').weights[0];
    const moved = tf.randomNormal([5], 0, 1, 'float32', 9);
    running.write(moved); // what training would do
    const file = await lora.saveAdapter(dir);
    expect(Object.keys(file.base.samples)).not.to.include('shift/running');
    expect(file.statistics).to.deep.equal(['shift/running']);
    const fresh = make();
    const loaded = await LoraModel.load(fresh, dir);
    expect(sameValues(loaded.model.getLayer('shift').weights[0].read(), moved)).to.equal(true);
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 2);
    tf.tidy(() => {
      expect(sameValues(loaded.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose([x, moved]);
    [loaded, fresh, lora, base].forEach((m) => m.dispose());
  });

  it('still reads files whose fingerprint samples only the adapted kernels, by layer path', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    const cfg = path.join(dir, 'adapter_config.json');
    const file = JSON.parse(fs.readFileSync(cfg, 'utf8'));
    file.base.samples = { fc1: file.base.samples['fc1/kernel'], fc2: file.base.samples['fc2/kernel'] }; // the earlier format
    fs.writeFileSync(cfg, JSON.stringify(file));
    const same = mlp(1);
    const loaded = await LoraModel.load(same, dir);
    const other = mlp(42);
    expect((await rejected(LoraModel.load(other, dir))).message).to.match(/the base weights differ: 'fc1' differs by up to/);
    [loaded, same, other, lora, base].forEach((m) => m.dispose());
  });

  it('refuses a base of another shape', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    const wider = tf.sequential({ layers: [tf.layers.dense({ units: 16, inputShape: [6], name: 'fc1' }), tf.layers.dense({ units: 10, name: 'fc2' }), tf.layers.dense({ units: 3, name: 'head' })] });
    const err = await rejected(LoraModel.load(wider, dir));
    expect(err.message).to.match(/weight 'fc1\/lora_B' has shape \[2,12\] in the file but \[2,16\] in this model/);
    const partial = applyLora(wider, { targets: 'fc2', rank: 2, alpha: 3 });
    const err2 = await rejected(partial.loadAdapter(dir));
    expect(err2.message).to.match(/targets layer 'fc1', which is not LoRA-wrapped/);
    [partial, wider, lora, base].forEach((m) => m.dispose());
  });

  it('detects a torn or tampered weights file and an unknown format version', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    const bin = path.join(dir, 'adapter_weights.bin');
    const bytes = fs.readFileSync(bin);
    bytes[5] ^= 0xff;
    fs.writeFileSync(bin, bytes);
    expect((await rejected(readAdapter(dir))).message).to.match(/does not match the checksum/);
    await lora.saveAdapter(dir);
    const cfg = path.join(dir, 'adapter_config.json');
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('"version": 1', '"version": 99'));
    expect((await rejected(readAdapter(dir))).message).to.match(/format version 99; this @tapfit\/plugin-lora reads version 1/);
    expect((await rejected(readAdapter(path.join(dir, 'nope')))).message).to.match(/no adapter at/);
    [lora, base].forEach((m) => m.dispose());
  });

  it('a save that fails or is killed at any file operation leaves the folder loadable: the adapter it held, or the new one', async () => {
    // The README's guarantee (atomic files, the config last, the old config never paired with
    // the new weights). Each run fails the k-th file-system call of a save over an existing
    // adapter: only that call (an error), or it and every later one (killed there, no clean-up).
    const { base, lora } = trained(1);
    const out = path.join(dir, 'adapter');
    const before = path.join(dir, 'before');
    await lora.saveAdapter(before);
    const old = (await readAdapter(before)).tensors;
    perturbAdapters(lora.model, 11, 0.5);
    await lora.saveAdapter(path.join(dir, 'after'));
    const neu = (await readAdapter(path.join(dir, 'after'))).tensors;
    const same = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => a.size === b.size && [...a].every(([k, v]) => b.has(k) && Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)));
    expect(same(old, neu)).to.equal(false);

    const fsp = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const writes = ['writeFile', 'rename', 'rm', 'unlink', 'mkdir', 'copyFile', 'link', 'open', 'appendFile'].filter((op) => typeof fsp[op] === 'function');
    const originals = Object.fromEntries(writes.map((op) => [op, fsp[op]]));
    let runs = 0;
    for (const killed of [false, true]) {
      for (let k = 1; ; k++) {
        fs.rmSync(out, { recursive: true, force: true });
        fs.cpSync(before, out, { recursive: true });
        let calls = 0;
        for (const op of writes) {
          fsp[op] = async (...args: unknown[]) => {
            calls++;
            if (calls === k || (killed && calls > k)) throw new Error(`injected failure of ${op}`);
            return originals[op].apply(fs.promises, args);
          };
        }
        let error: unknown;
        try {
          await lora.saveAdapter(out);
        } catch (e) {
          error = e;
        } finally {
          for (const op of writes) fsp[op] = originals[op];
        }
        if (calls < k) break; // the save made fewer than k calls: every one has been failed once
        runs++;
        const what = `${killed ? 'killed at' : 'failure of'} call ${k}`;
        let held: Map<string, Float32Array> | undefined;
        try {
          held = (await readAdapter(out)).tensors;
        } catch (e) {
          expect.fail(`${what}: the folder does not load (${(e as Error).message})`);
        }
        expect(same(held, old) || same(held, neu), `${what}: the folder holds neither adapter`).to.equal(true);
        if (error === undefined) expect(same(held, neu), `${what}: the save resolved but the folder holds the old adapter`).to.equal(true);
        else expect(error, `${what}: ${String(error)}`).to.be.instanceOf(TapfitError);
        if (!killed) expect(fs.readdirSync(out).filter((f) => f.endsWith('.tmp')), `${what}: temp files left`).to.deep.equal([]);
        // A later save completes and leaves only the two files.
        await lora.saveAdapter(out);
        expect(fs.readdirSync(out).filter((f) => !f.endsWith('.tmp')).sort(), what).to.deep.equal(['adapter_config.json', 'adapter_weights.bin']);
        expect(same((await readAdapter(out)).tensors, neu), what).to.equal(true);
      }
    }
    expect(runs).to.be.greaterThan(8);
    const base2 = mlp(1);
    const loaded = await LoraModel.load(base2, out);
    [loaded, base2, lora, base].forEach((m) => m.dispose());
  });

  it('overlapping saves to one folder run one after another: the folder holds the last one, whole', async () => {
    const a = trained();
    const b = trained();
    perturbAdapters(b.lora.model, 9, 0.5); // another adapter on the same base
    const fsp = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const open = fsp.open;
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 4);
    try {
      for (const replacing of [false, true]) {
        const out = path.join(dir, `adapter-${replacing}`);
        if (replacing) await b.lora.saveAdapter(out);
        // The first save's first file write is slow: without a queue the second save ran meanwhile and the first then overwrote it.
        let slowed = false;
        fsp.open = async function (this: unknown, ...args: unknown[]) {
          if (!slowed && String(args[0]).startsWith(out)) {
            slowed = true;
            await new Promise((r) => setTimeout(r, 100));
          }
          return open.apply(fs.promises, args);
        };
        await Promise.all([a.lora.saveAdapter(out), b.lora.saveAdapter(out)]);
        fsp.open = open;
        const loaded = await LoraModel.load(mlp(1), out);
        tf.tidy(() => {
          expect(sameValues(loaded.model.predict(x) as tf.Tensor, b.lora.model.predict(x) as tf.Tensor)).to.equal(true);
        });
        loaded.dispose();
      }
    } finally {
      fsp.open = open;
    }
    tf.dispose(x);
    [a.lora, a.base, b.lora, b.base].forEach((m) => m.dispose());
  });

  it('a damaged config or a missing weights file is a TapfitError naming the file and the fix', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    fs.rmSync(path.join(dir, 'adapter_weights.bin'));
    const missing = await rejected(readAdapter(dir));
    expect(missing).to.be.instanceOf(TapfitError);
    expect((missing as TapfitError).code).to.equal(ErrorCodes.CHECKPOINT);
    expect(missing.message).to.match(/^lora: adapter '.*': cannot read adapter_weights\.bin \(.*\); copy it along with adapter_config\.json or save the adapter again\./);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), '{"format": "tapfit-lora-adapter", ');
    const damaged = await rejected(readAdapter(dir));
    expect(damaged).to.be.instanceOf(TapfitError);
    expect((damaged as TapfitError).code).to.equal(ErrorCodes.CHECKPOINT);
    expect(damaged.message).to.match(/adapter_config\.json' is not valid JSON \(.*\); the file is damaged: save the adapter again\./);
    [lora, base].forEach((m) => m.dispose());
  });

  it('an edited or damaged adapter_config.json field (the weights table, base, targets) is refused naming the file and the field, and the model is unchanged', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    const config = path.join(dir, 'adapter_config.json');
    const saved = fs.readFileSync(config, 'utf8');
    const cases: [field: string, edit: (c: any) => void][] = [
      ['weights', (c) => (c.weights = null)],
      ['weights[0].shape', (c) => (c.weights[0].shape = 'x')],
      ['weights[0].offset', (c) => (c.weights[0].offset = 2)], // misaligned: other bytes
      ['weights[0].offset', (c) => ([c.weights[0].offset, c.weights[2].offset] = [c.weights[2].offset, c.weights[0].offset])], // two weights swapped
      ['weights[0].dtype', (c) => (c.weights[0].dtype = 'float16')],
      ['weights[1].name', (c) => (c.weights[1].name = c.weights[0].name)],
      ['weightsFile', (c) => (c.weightsFile = '../adapter_weights.bin')],
      ['base', (c) => delete c.base],
      ['base.samples', (c) => (c.base.samples = {})], // nothing left to compare: any base would pass
      ['targets', (c) => (c.targets = 'fc1')],
      ['modulesToSave', (c) => delete c.modulesToSave],
      ['spec.rank', (c) => (c.spec.rank = '2')],
    ];
    const other = applyLora(mlp(1), { targets: 'all-linear', rank: 2, alpha: 3, seed: 9 });
    perturbAdapters(other.model, 4, 0.5);
    const before = other.model.weights.map((w) => w.read().clone());
    for (const [field, edit] of cases) {
      const c = JSON.parse(saved);
      edit(c);
      fs.writeFileSync(config, JSON.stringify(c));
      for (const err of [await rejected(LoraModel.load(mlp(1), dir)), await rejected(other.loadAdapter(dir))]) {
        expect(err, field).to.be.instanceOf(TapfitError);
        expect((err as TapfitError).code, field).to.equal(ErrorCodes.CHECKPOINT);
        expect(err.message, field).to.contain(`'${dir}/adapter_config.json': field '${field}' `);
        expect(err.message, field).to.match(/the file is damaged or was edited: save the adapter again\.$/);
      }
      other.model.weights.forEach((w, i) => expect(sameValues(w.read(), before[i]), `${field}: ${w.name}`).to.equal(true));
    }
    // The unedited file still loads and reproduces the saved model.
    fs.writeFileSync(config, saved);
    const loaded = await LoraModel.load(mlp(1), dir);
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 4);
    tf.tidy(() => {
      expect(sameValues(loaded.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose([x, ...before]);
    [loaded, other, lora, base].forEach((m) => m.dispose());
  });

  it('an adapter_config.json an editor saved with a byte-order mark loads as the saved adapter', async () => {
    const { base, lora } = trained(1);
    await lora.saveAdapter(dir);
    const config = path.join(dir, 'adapter_config.json');
    fs.writeFileSync(config, '\uFEFF' + fs.readFileSync(config, 'utf8'));
    const base2 = mlp(1);
    const loaded = await LoraModel.load(base2, dir);
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 5);
    tf.tidy(() => {
      expect(sameValues(loaded.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose(x);
    [loaded, base2, lora, base].forEach((m) => m.dispose());
  });

  it('LoraModel.load reads saved paths exactly: a layer named like a keyword (output) is that layer, not the head', async () => {
    const make = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 5, inputShape: [4], name: 'output', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
          tf.layers.dense({ units: 2, name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
        ],
      });
    const base = make();
    const lora = applyLora(base, { targets: /^output$/, rank: 2, seed: 1 });
    perturbAdapters(lora.model, 3, 0.5);
    await lora.saveAdapter(dir);
    const loaded = await LoraModel.load(base, dir);
    expect(loaded.layers.map((l) => l.name)).to.deep.equal(['output']);
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 9);
    tf.tidy(() => {
      expect(sameValues(lora.model.predict(x) as tf.Tensor, loaded.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose(x);
    [lora, loaded, base].forEach((m) => m.dispose());
  });

  it('several named adapters: save each, load both onto one base, switch between them', async () => {
    const { base, lora } = trained(1);
    lora.addAdapter('other', { rank: 3, seed: 11 });
    lora.setActiveAdapter('other');
    perturbAdapters(lora.model, 8, 0.5);
    await lora.saveAdapter(path.join(dir, 'a'), { adapter: 'default' });
    await lora.saveAdapter(path.join(dir, 'b'));
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 1);
    const yb = lora.model.predict(x) as tf.Tensor;
    lora.setActiveAdapter('default');
    const ya = lora.model.predict(x) as tf.Tensor;

    const base2 = mlp(1);
    const fresh = await LoraModel.load(base2, path.join(dir, 'a'));
    expect(await fresh.loadAdapter(path.join(dir, 'b'))).to.equal('other');
    expect(fresh.adapters).to.deep.equal(['default', 'other']);
    expect(fresh.activeAdapter).to.equal('other');
    tf.tidy(() => {
      expect(sameValues(fresh.model.predict(x) as tf.Tensor, yb)).to.equal(true);
    });
    fresh.setActiveAdapter('default');
    tf.tidy(() => {
      expect(sameValues(fresh.model.predict(x) as tf.Tensor, ya)).to.equal(true);
    });
    // Loading again under the same name with another spec is refused.
    expect((await rejected(fresh.loadAdapter(path.join(dir, 'b'), { name: 'default' }))).message).to.match(/already has an adapter 'default' with a different spec/);
    tf.dispose([x, ya, yb]);
    [fresh, base2, lora, base].forEach((m) => m.dispose());
  });

  it('refuses to overwrite an adapter that is on more layers than the file covers (it would leave a mix), changing nothing', async () => {
    const { base, lora } = trained(1, { targets: ['fc1', 'fc2'] });
    await lora.saveAdapter(dir);
    // The same adapter name, already trained, on fc1, fc2 and head.
    const wider = applyLora(mlp(1), { targets: ['fc1', 'fc2', 'head'], rank: 2, alpha: 3, seed: 9 });
    perturbAdapters(wider.model, 4, 0.5);
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 3);
    const before = wider.model.predict(x) as tf.Tensor;
    const weightsBefore = wider.model.weights.map((w) => w.read().clone());

    const err = await rejected(wider.loadAdapter(dir));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal(ErrorCodes.STATE);
    expect(err.message).to.match(/adapter 'default' on layer 'head' too, which .* does not cover \(its targets: fc1, fc2\).*Load it under another name/);
    wider.model.weights.forEach((w, i) => expect(sameValues(w.read(), weightsBefore[i]), w.name).to.equal(true));
    expect(wider.activeAdapter).to.equal('default');
    tf.tidy(() => {
      expect(sameValues(wider.model.predict(x) as tf.Tensor, before)).to.equal(true);
    });

    // Under another name it loads, and the layer it does not cover runs without it: the saved model's outputs.
    expect(await wider.loadAdapter(dir, { name: 'saved' })).to.equal('saved');
    tf.tidy(() => {
      expect(sameValues(wider.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    tf.dispose([x, before, ...weightsBefore]);
    [wider, lora, base].forEach((m) => m.dispose());
  });

  it('refuses to save or load while merged', async () => {
    const { base, lora } = trained(1);
    lora.merge();
    expect((await rejected(lora.saveAdapter(dir))).message).to.match(/merged.*call unmerge\(\) first/);
    lora.unmerge();
    await lora.saveAdapter(dir);
    lora.merge();
    expect((await rejected(lora.loadAdapter(dir))).message).to.match(/merged.*call unmerge\(\) first/);
    [lora, base].forEach((m) => m.dispose());
  });

  it('a merge/unmerge round trip does not break the base fingerprint', async () => {
    const { base, lora } = trained(1);
    lora.merge().unmerge();
    await lora.saveAdapter(dir);
    const base2 = mlp(1);
    const loaded = await LoraModel.load(base2, dir);
    expect(loaded.adapters).to.deep.equal(['default']);
    [loaded, base2, lora, base].forEach((m) => m.dispose());
  });
});
