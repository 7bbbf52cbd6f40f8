import * as tf from '@tensorflow/tfjs';
import { CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, type Manifest, type Position } from '../checkpoint/manifest';
import { TensorReader, TensorWriter } from '../checkpoint/tensor-file';
import { ErrorCodes, TapfitError } from '../errors';
import type { TapfitPlugin } from '../plugin/types';
import { checkStateMatches, stateTensors } from '../transforms/state';
import type { TransformState } from '../transforms/types';
import { CORE_VERSION } from '../version';
import { ChainStepper, OptimizerStepper, type Stepper } from './stepper';

/** The parts of a trainer a checkpoint holds. */
export interface TrainerParts {
  step: number;
  skipped: number;
  position: Position;
  seed: number;
  plugins: readonly TapfitPlugin[];
  /** All model variables, in model order. */
  variables: readonly tf.Variable[];
  stepper: Stepper;
}

/** Everything a trainer needs to continue exactly where it was (reads tensors back). */
export async function captureCheckpoint(p: TrainerParts): Promise<{ manifest: Manifest; tensors: Buffer }> {
  const w = new TensorWriter();
  const variables = p.variables.map((v) => ({ name: v.name, shape: [...v.shape], ref: w.add(v) }));
  let optimizer: Manifest['optimizer'];
  if (p.stepper instanceof ChainStepper) {
    optimizer = { kind: 'chain', names: [...p.stepper.names], state: w.encode(p.stepper.state) };
  } else {
    const opt = (p.stepper as OptimizerStepper).optimizer;
    const weights = await opt.getWeights();
    optimizer = { kind: 'optimizer', className: opt.getClassName(), weights: weights.map((x) => ({ name: x.name, ref: w.add(x.tensor) })) };
  }
  const pluginState: Manifest['pluginState'] = {};
  for (const plugin of p.plugins) {
    if (!plugin.saveState) continue;
    const s = plugin.saveState();
    pluginState[plugin.name] = { json: s.json, tensors: s.tensors && (w.encode(s.tensors) as Record<string, { $tensor: number }>) };
  }
  const manifest: Manifest = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    coreVersion: CORE_VERSION,
    createdAt: new Date().toISOString(),
    step: p.step,
    skipped: p.skipped,
    position: { ...p.position },
    seed: p.seed,
    plugins: p.plugins.map((x) => x.name),
    variables,
    optimizer,
    pluginState,
    tensors: w.entries,
  };
  return { manifest, tensors: w.buffer() };
}

/** Renames object keys that are saved variable names to the current variable names. */
function renameParams(value: unknown, names: ReadonlyMap<string, string>): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value) && !('$tensor' in value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [names.get(k) ?? k, renameParams(v, names)]));
  }
  return value;
}

/**
 * Checks a checkpoint against the trainer completely, then loads it. Nothing changes
 * unless every check passes (model layout, plugins, optimizer layout).
 */
export async function restoreCheckpoint(m: Manifest, reader: TensorReader, p: TrainerParts, where: string): Promise<void> {
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: ${why}`);
  };
  if (m.variables.length !== p.variables.length) {
    fail(`the checkpoint holds ${m.variables.length} model variables but this model has ${p.variables.length}; resume with the model architecture that was saved.`);
  }
  m.variables.forEach((sv, i) => {
    const v = p.variables[i];
    if (sv.shape.length !== v.shape.length || sv.shape.some((d, k) => d !== v.shape[k])) {
      fail(`model variable ${i} ('${sv.name}') was saved with shape [${sv.shape}] but this model's ('${v.name}') is [${v.shape}]; resume with the architecture that was saved.`);
    }
  });
  const registered = new Map(p.plugins.map((x) => [x.name, x]));
  for (const name of Object.keys(m.pluginState)) {
    if (!registered.has(name)) fail(`the checkpoint needs plugin '${name}' (it holds its state), which is not registered. Add '${name}' to the plugins.`);
    if (!registered.get(name)!.loadState) fail(`plugin '${name}' has saved state but no loadState(); use the plugin version that wrote the checkpoint.`);
  }
  const names = new Map(m.variables.map((sv, i) => [sv.name, p.variables[i].name]));

  const created: tf.Tensor[] = [];
  const track = <T>(x: T): T => (created.push(...stateTensors(x as TransformState)), x);
  try {
    let chainState: Record<string, TransformState> | undefined;
    let optimizerWeights: { name: string; tensor: tf.Tensor }[] | undefined;
    if (p.stepper instanceof ChainStepper) {
      if (m.optimizer.kind !== 'chain') fail(`the checkpoint was saved with a black-box ${(m.optimizer as { className: string }).className} optimizer; resume with the same optimizer.`);
      const o = m.optimizer as Extract<Manifest['optimizer'], { kind: 'chain' }>;
      if (o.names.join(',') !== p.stepper.names.join(',')) {
        fail(`the update chain was [${o.names.join(', ')}] when saved but is [${p.stepper.names.join(', ')}] now; resume with the same optimizer and plugins.`);
      }
      chainState = track(reader.decode(renameParams(o.state, names)) as Record<string, TransformState>);
      checkStateMatches(p.stepper.state, chainState, 'optimizer state');
    } else {
      if (m.optimizer.kind !== 'optimizer') fail('the checkpoint was saved with a step-transform chain; resume with the same optimizer.');
      const o = m.optimizer as Extract<Manifest['optimizer'], { kind: 'optimizer' }>;
      const rename = (n: string) => [...names].reduce((acc, [from, to]) => (acc.startsWith(from) ? to + acc.slice(from.length) : acc), n);
      optimizerWeights = o.weights.map((x) => ({ name: rename(x.name), tensor: track(reader.tensor(x.ref.$tensor)) }));
    }
    const values = m.variables.map((sv) => track(reader.tensor(sv.ref.$tensor)));
    const pluginStates = Object.entries(m.pluginState).map(([name, s]) => ({
      name,
      json: s.json,
      tensors: s.tensors ? track(reader.decode(s.tensors) as Record<string, tf.Tensor>) : undefined,
    }));

    // Every check passed: apply. (A plugin's loadState must validate before it changes anything.)
    created.length = 0;
    p.variables.forEach((v, i) => v.assign(values[i]));
    tf.dispose(values);
    if (chainState) (p.stepper as ChainStepper).setState(chainState);
    if (optimizerWeights) {
      await (p.stepper as OptimizerStepper).optimizer.setWeights(optimizerWeights);
      tf.dispose(optimizerWeights.map((x) => x.tensor));
    }
    for (const s of pluginStates) registered.get(s.name)!.loadState!({ json: s.json, tensors: s.tensors });
  } catch (err) {
    tf.dispose(created.filter((t) => !t.isDisposed));
    throw err;
  }
}
