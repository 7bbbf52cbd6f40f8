import type * as tf from '@tensorflow/tfjs';

/**
 * What `model.compile()` last set on a tfjs-layers model. Each compile assigns the optimizer
 * (a new object for a name) and the loss, so a change of either means the program compiled
 * again: the fine-tuning recipe's lower learning rate, which a trainer does not take.
 */
export interface CompileMark {
  readonly optimizer: unknown;
  readonly loss: unknown;
}

export function compileMark(model: tf.LayersModel): CompileMark {
  return { optimizer: model.optimizer, loss: model.loss };
}

export function compiledSince(mark: CompileMark, model: tf.LayersModel): boolean {
  return model.optimizer !== mark.optimizer || model.loss !== mark.loss;
}

export const RECOMPILED_WARNING =
  'fit: model.compile() was called on the model after this trainer was built. The trainer trains with the optimizer, loss and metrics given to new Trainer({...}), ' +
  "not the compile's (model.evaluate uses the compile's loss and metrics). For another optimizer, learning rate or loss, build a new Trainer({ model, optimizer, loss }): " +
  'the weights are in the model, and the new trainer starts a fresh optimizer state, as compile() does.';
