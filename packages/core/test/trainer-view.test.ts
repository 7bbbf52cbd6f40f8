import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Stage, type NamedTensors, type TapfitPlugin, type TrainerView } from '../src';
import { blobData, testTrainer } from '../src/testing';

describe('TrainerView.optimizerState (what plugins may read of the update chain)', () => {
  it("is the trainer's live chain state: after each step the momentum velocity a plugin reads is the trainer's", async () => {
    let view: TrainerView | undefined;
    const seen: number[][] = [];
    const reader: TapfitPlugin = {
      name: 'state-reader',
      core: '*',
      apply: ({ hooks, trainer }) => {
        view = trainer;
        hooks.batchEnd.tap({ stage: Stage.LAST }, () => {
          const velocity = view!.optimizerState!.momentum.velocity as NamedTensors;
          seen.push(Array.from(Object.values(velocity)[0].dataSync()));
        });
      },
    };
    const trainer = testTrainer({ plugins: [reader] });
    const data = blobData(16);
    await trainer.fit(data, { epochs: 1, batchSize: 8, shuffle: false });
    expect(seen).to.have.length(2);
    const live = Object.values(trainer.optimizerState!.momentum.velocity as NamedTensors)[0];
    expect(seen[1]).to.deep.equal(Array.from(live.dataSync()));
    expect(seen[1].some((v) => v !== 0)).to.equal(true);
    trainer.dispose();
    data.dispose();
    tf.dispose();
  });
});
