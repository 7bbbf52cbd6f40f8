import { expect } from 'chai';
import { rebuildLayersModelInWorker, TapfitError } from '../src';
import { rejected, tinyMlp, useBackend } from './fixtures';

describe('rebuildLayersModelInWorker', () => {
  useBackend('cpu');
  const where = { builder: 'each test worker', setupOption: 'setupModule' };

  it('rebuilds a model of built-in classes from its JSON topology', async () => {
    const source = tinyMlp();
    const model = await rebuildLayersModelInWorker(source.toJSON(null, false), where);
    expect(model.layers.map((l) => l.getClassName())).to.deep.equal(source.layers.map((l) => l.getClassName()));
    for (const m of [source, model]) m.dispose();
  });

  it("a class this thread never registered: a CONFIG error naming it and where to register it, not tfjs's list of reasons", async () => {
    const source = tinyMlp();
    const topology = source.toJSON(null, false) as unknown as { config: { layers: { class_name: string }[] } };
    source.dispose();
    topology.config.layers[1].class_name = 'NeverRegisteredScale';
    const err = await rejected(rebuildLayersModelInWorker(topology, where));
    expect(err).to.be.instanceOf(TapfitError);
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.equal(
      "cannot rebuild the model's layer class 'NeverRegisteredScale' from its JSON: each test worker builds the model with its own TF.js, which knows the built-in classes only, " +
        'not those registered on the calling thread. Register it in a module passed as setupModule (at its top level or in its setup(): tf.serialization.registerClass(NeverRegisteredScale))',
    );
  });
});
