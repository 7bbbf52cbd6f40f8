// file:// save and load in Node without tfjs-node, in tfjs-node's file layout.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fileSystem, TapfitError } from '../../src';
import { useBackend } from '../fixtures';

function model(): tf.Sequential {
  const m = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [3], units: 4, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  m.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  return m;
}

/** The artifacts tfjs hands an IO handler for `m`. */
async function artifactsOf(m: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await m.save(tf.io.withSaveHandler(async (a) => ((captured = a), { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) })));
  return captured!;
}

/**
 * model.json as tfjs-node's NodeFileSystem writes it (tfjs-node/src/io/file_system.ts):
 * modelTopology, weightsManifest with paths ['weights.bin'], format, generatedBy,
 * convertedBy, then trainingConfig, signature and userDefinedMetadata when present.
 */
function tfjsNodeModelJson(a: tf.io.ModelArtifacts): string {
  const json: Record<string, unknown> = {
    modelTopology: a.modelTopology,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
  };
  if (a.trainingConfig != null) json.trainingConfig = a.trainingConfig;
  if (a.signature != null) json.signature = a.signature;
  if (a.userDefinedMetadata != null) json.userDefinedMetadata = a.userDefinedMetadata;
  return JSON.stringify(json);
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-io-'));
const predictions = (m: tf.LayersModel) => tf.tidy(() => Array.from((m.predict(tf.tensor2d([[1, -2, 0.5], [0.3, 0.1, -1]])) as tf.Tensor).dataSync()));

describe("file:// IO without tfjs-node (registered by @tapfit/core)", () => {
  useBackend('cpu');

  it("model.save('file://dir') writes the files tfjs-node writes, byte for byte", async () => {
    const dir = tmp();
    const m = model();
    const artifacts = await artifactsOf(m);
    await m.save(`file://${dir}`);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['model.json', 'weights.bin']);
    expect(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).to.equal(tfjsNodeModelJson(artifacts));
    expect(fs.readFileSync(path.join(dir, 'weights.bin')).equals(Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData!)))).to.equal(true);
    m.dispose();
  });

  it("tf.loadLayersModel('file://.../model.json') loads what tfjs-node wrote, and what tapfit wrote", async () => {
    const m = model();
    const artifacts = await artifactsOf(m);
    const nodeDir = tmp();
    fs.writeFileSync(path.join(nodeDir, 'model.json'), tfjsNodeModelJson(artifacts));
    fs.writeFileSync(path.join(nodeDir, 'weights.bin'), Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData!)));
    const fromNode = await tf.loadLayersModel(`file://${path.join(nodeDir, 'model.json')}`);
    expect(predictions(fromNode)).to.deep.equal(predictions(m));

    const ours = tmp();
    await m.save(`file://${ours}`);
    const fromOurs = await tf.loadLayersModel(`file://${ours}`); // a directory works too
    expect(predictions(fromOurs)).to.deep.equal(predictions(m));
    [m, fromNode, fromOurs].forEach((x) => x.dispose());
  });

  it('loads a model.json whose manifest lists several weight files (the converter\'s shards)', async () => {
    const m = model();
    const a = await artifactsOf(m);
    const bytes = Buffer.from(tf.io.CompositeArrayBuffer.join(a.weightData!));
    const dir = tmp();
    const cut = 16; // the shard boundary falls inside the first weight
    fs.writeFileSync(path.join(dir, 'group1-shard1of2.bin'), bytes.subarray(0, cut));
    fs.writeFileSync(path.join(dir, 'group1-shard2of2.bin'), bytes.subarray(cut));
    fs.writeFileSync(
      path.join(dir, 'model.json'),
      JSON.stringify({ modelTopology: a.modelTopology, format: a.format, weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: a.weightSpecs }] }),
    );
    const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
    expect(predictions(loaded)).to.deep.equal(predictions(m));
    [m, loaded].forEach((x) => x.dispose());
  });

  it('steps aside for another file:// router (tfjs-node\'s), so tfjs never sees two handlers', async () => {
    const other = fileSystem(tmp());
    tf.io.registerSaveRouter(((url: string | string[]) => (typeof url === 'string' && url.startsWith('file:///other-router/') ? other : null)) as never);
    expect(tf.io.getSaveHandlers('file:///other-router/x')).to.deep.equal([other]);
    expect(tf.io.getSaveHandlers(`file://${tmp()}`)).to.have.length(1);
  });

  it('errors name the path and the fix', async () => {
    const dir = tmp();
    const file = path.join(dir, 'taken');
    fs.writeFileSync(file, 'x');
    const m = model();
    const saveErr = await m.save(`file://${file}`).catch((e: TapfitError) => e);
    expect((saveErr as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    expect((saveErr as Error).message).to.match(/is a file; saving needs a directory/);
    const loadErr = await tf.loadLayersModel(`file://${path.join(dir, 'missing.json')}`).catch((e: Error) => e);
    expect((loadErr as Error).message).to.match(/missing\.json' does not exist; pass the path of a model\.json/);
    m.dispose();
  });
});
