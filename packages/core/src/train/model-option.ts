import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { assertSinglePackageCopies } from '../plugin/single-copy';

const ACCEPTED = 'a tfjs-layers model (tf.sequential, tf.model, await tf.loadLayersModel(...)) or a segment model ({ segments: [{ name, params, forward }] }, e.g. segmentModel([...]))';

const has = (o: object, key: string, type: string): boolean => typeof (o as Record<string, unknown>)[key] === type;

/** What the object calls itself (its tfjs class name), for the message. */
function className(o: object): string {
  try {
    return has(o, 'getClassName', 'function') ? String((o as { getClassName(): unknown }).getClassName()) : (o.constructor?.name ?? 'Object');
  } catch {
    return 'Object';
  }
}

/**
 * Refuses a `model` option the trainer cannot train, at construction: anything else would be
 * taken for a segment model and fail at the first fit with a bare TypeError. The likely
 * mix-ups are named: a layer for a model, an un-awaited load, a graph model, and a model
 * made by another copy of tfjs (its classes are not this copy's, so `instanceof` fails).
 */
export function checkModelOption(model: unknown): void {
  if (model instanceof tf.LayersModel) return;
  const refuse = (what: string, fix: string, why = `not ${ACCEPTED}`): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `trainer: \`model\` is ${what}, ${why}. ${fix}`);
  };
  if (typeof model !== 'object' || model === null) return refuse(`a ${model === null ? 'null' : typeof model}`, 'Pass the model object itself.');
  if (has(model, 'then', 'function')) return refuse('a Promise', 'Await the model first: `model: await tf.loadLayersModel(url)`.');
  if (Array.isArray((model as { layers?: unknown }).layers) && has(model, 'fit', 'function')) {
    // A second copy the module cache shows is named with both folders (TAPFIT_E_DUPLICATE_PACKAGE); one it cannot see (a bundle, an ESM import) is refused here.
    assertSinglePackageCopies(`new Trainer({ model }), whose model is a ${className(model)} made by another copy of tfjs than @tapfit/core's`);
    return refuse(
      `a ${className(model)} made by another copy of @tensorflow/tfjs than the one @tapfit/core uses`,
      'Run `npm ls @tensorflow/tfjs @tensorflow/tfjs-layers` and make one copy serve both (one version range, then `npm dedupe`; a package that builds models should take tfjs as a peer dependency).',
      "and tfjs's classes differ from copy to copy, so the trainer cannot use it",
    );
  }
  if (model instanceof tf.layers.Layer || (has(model, 'apply', 'function') && has(model, 'getClassName', 'function') && has(model, 'computeOutputShape', 'function'))) {
    const foreign = model instanceof tf.layers.Layer ? '' : ' (made by another copy of @tensorflow/tfjs: check `npm ls @tensorflow/tfjs`)';
    return refuse(
      `a layer (${className(model)} '${String((model as { name?: unknown }).name)}')${foreign}`,
      'Pass the model that holds it (`model`, not `model.layers[i]`), or build a model around it: `tf.sequential({ layers: [...] })`.',
    );
  }
  if (has(model, 'execute', 'function') && has(model, 'predict', 'function') && !('segments' in model)) {
    return refuse('a graph model (tf.loadGraphModel), which holds no trainable layers', 'Load a tfjs-layers model instead: `await tf.loadLayersModel(url)` (convert the original as a Keras/layers model).');
  }
  const segments = (model as { segments?: unknown }).segments;
  if (!Array.isArray(segments)) {
    const keys = Object.keys(model).slice(0, 5);
    return refuse(`${className(model) === 'Object' ? 'a plain object' : `a ${className(model)}`} (keys: ${keys.length ? keys.join(', ') : 'none'})`, 'A description of a model (its JSON, a `{ layers }` object) is not one: build it (tf.sequential, await tf.models.modelFromJSON(json)) and pass that.');
  }
  if (!segments.length) refuse('a segment model with no segments', 'Give it at least one segment.');
  segments.forEach((s: unknown, i) => {
    const seg = (s ?? {}) as { name?: unknown; params?: unknown; forward?: unknown };
    const missing = [typeof seg.name === 'string' ? '' : 'a string `name`', Array.isArray(seg.params) ? '' : 'a `params` list of tf.Variables', typeof seg.forward === 'function' ? '' : 'a `forward(xs, ctx)` function'].filter(Boolean);
    if (missing.length) refuse(`a segment model whose segment ${i} lacks ${missing.join(', ')}`, 'Each segment is { name, params, forward } (see docs/design.md, Model = segments).');
  });
}
