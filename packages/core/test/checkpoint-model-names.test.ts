import { fork } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { SilentLogger, sgd, Trainer, type TrainerOptions } from '../src';
import { blobs, tmpDir, useBackend, rejected as errorOf } from './fixtures';
import { customLayerModel, layerNamesModel, scaleLayerClass } from './fixtures/layer-names-model';

const weightsOf = (model: tf.LayersModel) => model.getWeights().map((w) => Array.from(w.dataSync()));
const options = (model: tf.LayersModel): TrainerOptions => ({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), logger: new SilentLogger() });

/** Resumes `dir` in a new process with layerNamesModel(); what it loaded. */
function resumeInNewProcess(dir: string): Promise<{ names: string[]; weights: number[][]; error?: string }> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'fixtures', 'resume-in-new-process.js'), [dir], { stdio: 'pipe' });
    child.once('message', (m) => resolve(m as { names: string[]; weights: number[][] }));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the child exited with ${code} before it answered`)));
  });
}

describe("a checkpoint's variables go to the model's variables of the same names", () => {
  useBackend('cpu');

  /** The model `build` makes (layerNamesModel by default) trained 2 steps and saved; the trainer's weights at the save. */
  async function saved(build: () => tf.LayersModel = layerNamesModel): Promise<{ dir: string; weights: number[][]; names: string[] }> {
    const dir = tmpDir();
    const model = build();
    const data = blobs(16);
    const t = new Trainer(options(model));
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    const result = { dir, weights: weightsOf(model), names: model.weights.map((w) => (w.read() as tf.Variable).name) };
    t.dispose();
    data.dispose();
    model.dispose(); // its variables' names are global to the engine: later tests may name theirs the same
    return result;
  }

  it('the same definition built again in this process (tfjs suffixes its names with _<n>, renumbers unnamed layers) resumes the saved weights', async () => {
    const s = await saved();
    const between = layerNamesModel(); // one more build in between: the next one's names differ by more than one
    const model = layerNamesModel();
    const names = model.weights.map((w) => (w.read() as tf.Variable).name);
    expect(names).to.not.deep.equal(s.names);
    const r = await Trainer.resume(s.dir, options(model));
    expect(weightsOf(model)).to.deep.equal(s.weights);
    r.dispose();
    between.dispose();
    model.dispose();
  });

  it('the same definition in a new process (names without the suffixes this process added) resumes the saved weights', async function () {
    this.timeout(120000);
    const s = await saved();
    expect(s.names.some((n) => /_\d+$/.test(n)), 'the saving process suffixed its names').to.equal(true);
    const child = await resumeInNewProcess(s.dir);
    expect(child.error).to.equal(undefined);
    expect(child.names).to.not.deep.equal(s.names);
    expect(child.weights).to.deep.equal(s.weights);
  });

  for (const [label, names, first] of [
    ['two same-shaped layers swapped in the definition', ['fc2', 'fc1', 'head'], /saved 'fc1\/kernel(_\d+)?' would be loaded into 'fc2\/kernel(_\d+)?'/],
    ['another model with the same shapes (other layer names)', ['encoder', 'mixer', 'classifier'], /saved 'fc1\/kernel(_\d+)?' would be loaded into 'encoder\/kernel(_\d+)?'/],
  ] as const) {
    it(`${label}: refused naming the first variables that would go astray, and nothing changes`, async () => {
      const s = await saved();
      const model = layerNamesModel([...names]);
      const before = weightsOf(model);
      const tensors = tf.memory().numTensors;
      const err = await errorOf(Trainer.resume(s.dir, options(model)));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.match(first);
      expect(err.message).to.match(/the layer names or their order changed, or this is another model\. Variables load by position, so resume with the model definition that was saved/);
      expect(weightsOf(model)).to.deep.equal(before);
      expect(tf.memory().numTensors - tensors, 'tensors leaked').to.equal(0);
      model.dispose();
    });
  }

  describe("an unnamed custom layer, whatever its class name's shape (tfjs names it '<snake_case>_<Class><n>')", () => {
    // Ends in a digit (so 'block2_Block21'), in two (the number and the class run together), starts lower-case, starts with '_' (tfjs prefixes 'private'), holds '_'; 'Scale' is the plain shape.
    for (const className of ['Block2', 'ResBlock10', 'myScale', '_Gate', 'Two_Words', 'Scale']) {
      it(`class '${className}': the same definition built again in this process resumes the saved weights`, async () => {
        const Scale = scaleLayerClass(className);
        const s = await saved(() => customLayerModel(Scale));
        const between = customLayerModel(Scale); // renumbers the next unnamed one once more
        const model = customLayerModel(Scale);
        const names = model.weights.map((w) => (w.read() as tf.Variable).name);
        expect(names[2], "tfjs's own name for the unnamed layer's weight").to.not.equal(s.names[2]);
        const r = await Trainer.resume(s.dir, options(model));
        expect(weightsOf(model)).to.deep.equal(s.weights);
        r.dispose();
        between.dispose();
        model.dispose();
      });
    }

    it("a name the user gave that only looks numbered ('stage2_block1' then 'stage2_block2') is still compared, and refused", async () => {
      const Scale = scaleLayerClass('Block');
      const s = await saved(() => customLayerModel(Scale, 'stage2_block1'));
      const model = customLayerModel(Scale, 'stage2_block2');
      const before = weightsOf(model);
      const err = await errorOf(Trainer.resume(s.dir, options(model)));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.match(/saved 'stage2_block1\/w(_\d+)?' would be loaded into 'stage2_block2\/w(_\d+)?'/);
      expect(weightsOf(model)).to.deep.equal(before);
      model.dispose();
    });
  });
});
