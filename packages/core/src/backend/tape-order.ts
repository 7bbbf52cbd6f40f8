import { recordingTape, wrapAddTapeNode } from './engine-internals';

let installed = false;

/**
 * Second-order gradients through ops whose gradient reads their own output (tanh,
 * sigmoid, exp, softmax, ... : tfjs saves a clone of the output). tfjs-core 4.22 clones
 * the output while the kernel runs, so the clone's tape entry lands before the kernel's
 * own: the backward walks the tape in order, the clone looks unreachable from the
 * inputs, and a gradient of a gradient (a gradient penalty, physics-informed losses,
 * meta-learning) stopped there: tf.grad(b => sum(tf.grad(z => sum(tanh(z + b)))(x)))
 * threw "Cannot compute gradient of y=f(x) with respect to x", and through a layers
 * model the biases silently got no gradient. Each kernel's output clones are moved to
 * just after it. First-order gradients do not change: nothing reads the clones there.
 * `selectBackend` installs it. Idempotent.
 */
export function installTapeOrder(): void {
  if (installed) return;
  installed = true;
  wrapAddTapeNode((addTapeNode) => (kernelName, inputs, outputs, gradientsFunc, saved, attrs) => {
    addTapeNode(kernelName, inputs, outputs, gradientsFunc, saved, attrs);
    const tape = recordingTape();
    if (!tape || outputs.length === 0) return;
    const produced = new Set(outputs.map((t) => t.id));
    // The clones a kernel saves are of its inputs or its outputs, right before its entry.
    const saveable = new Set([...produced, ...Object.values(inputs).flatMap((t) => (t ? [t.id] : []))]);
    const node = tape.length - 1;
    let start = node;
    while (start > 0 && isCloneEntry(tape[start - 1]) && saveable.has(tape[start - 1].inputs.x.id)) start--;
    const clones = tape.slice(start, node).filter((entry) => produced.has(entry.inputs.x.id));
    if (clones.length === 0) return;
    const rest = tape.slice(start, node).filter((entry) => !clones.includes(entry));
    tape.splice(start, tape.length - start, ...rest, tape[node], ...clones);
  });
}

/** A clone's tape entry (engine.clone): one input `x`, one output. */
function isCloneEntry(entry: { inputs: Record<string, { id: number }>; outputs: unknown[] }): entry is { inputs: { x: { id: number } }; outputs: unknown[] } {
  const keys = Object.keys(entry.inputs);
  return keys.length === 1 && keys[0] === 'x' && entry.outputs.length === 1 && entry.inputs.x != null;
}
