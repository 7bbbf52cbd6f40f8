import type * as tf from '@tensorflow/tfjs';
import { recordingTape, wrapAddTapeNode } from './engine-internals';

let installed = false;

/**
 * Second-order gradients through ops whose gradient reads their own output (tanh,
 * sigmoid, exp, softmax, elu, ...: tfjs saves a clone of the output). tfjs-core 4.22
 * clones what an op saves while the op runs, and the clone's tape entry lands before the
 * op's own: the backward walks the tape in order, the clone of the output looks
 * unreachable from the inputs, and a gradient of a gradient (a gradient penalty,
 * physics-informed losses, meta-learning) stopped there:
 * tf.grad(b => sum(tf.grad(z => sum(tanh(z + b)))(x))) threw "Cannot compute gradient of
 * y=f(x) with respect to x", and through a layers model a bias silently got no gradient.
 * The op's output clones are moved to just after it. First-order gradients do not
 * change: nothing reads the clones through the tape there. `selectBackend` installs it.
 * Idempotent.
 */
export function installTapeOrder(): void {
  if (installed) return;
  installed = true;
  wrapAddTapeNode((addTapeNode) => (kernelName, inputs, outputs, gradientsFunc, saved, attrs) => {
    addTapeNode(kernelName, inputs, outputs, gradientsFunc, saved, attrs);
    const tape = recordingTape();
    // Most ops save nothing; those that do have their clones' entries right before their own.
    if (!tape || saved.length === 0) return;
    const node = tape.length - 1;
    let start = node;
    while (start > 0 && node - start < saved.length && isCloneOf(tape[start - 1], saved)) start--;
    const clones = tape.slice(start, node).filter((entry) => outputs.includes(entry.inputs.x));
    if (clones.length === 0) return;
    const rest = tape.slice(start, node).filter((entry) => !clones.includes(entry));
    tape.splice(start, node - start + 1, ...rest, tape[node], ...clones);
  });
}

/** The tape entry engine.clone made for one of `saved`: one input `x`, one output, a saved tensor. */
function isCloneOf(entry: { inputs: Record<string, tf.Tensor>; outputs: tf.Tensor[] }, saved: tf.Tensor[]): boolean {
  return entry.outputs.length === 1 && saved.includes(entry.outputs[0]) && entry.inputs.x != null && Object.keys(entry.inputs).length === 1;
}
