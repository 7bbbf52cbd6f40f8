import * as tf from '@tensorflow/tfjs';
import { CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, type Manifest, type Position } from '../checkpoint/manifest';
import { TensorReader, TensorWriter } from '../checkpoint/tensor-file';
import { ErrorCodes, pluginCallFailure, TapfitError } from '../errors';
import type { PluginState, TapfitPlugin } from '../plugin/types';
import { refusePromise } from '../plugin/sync-call';
import { checkStateMatches, stateTensors } from '../transforms/state';
import { anyNonFinite } from './non-finite';
import type { TransformState } from '../transforms/types';
import { CORE_VERSION } from '../version';
import { sameVariable } from '../checkpoint/variable-names';
import { refuseLossyPluginJson } from '../checkpoint/plain-json';
import { ChainStepper, OptimizerStepper, type Stepper } from './stepper';

/** The parts of a trainer a checkpoint holds. */
export interface TrainerParts {
  step: number;
  skipped: number;
  /** trainOnBatch calls so far (the `batch` its hooks see next). */
  trainOnBatchCalls: number;
  position: Position;
  seed: number;
  plugins: readonly TapfitPlugin[];
  /** All model variables, in model order. */
  variables: readonly tf.Variable[];
  stepper: Stepper;
}

/**
 * Variables a black-box optimizer keeps in its own fields, outside getWeights(): Adam's
 * running beta powers, which its setWeights() recomputes with pow() (a different last
 * bit than the running product), so they are saved to resume bit for bit.
 */
function optimizerFields(opt: tf.Optimizer): { name: string; variable: tf.Variable }[] {
  return Object.entries(opt)
    .filter(([, v]) => v instanceof tf.Variable)
    .map(([name, variable]) => ({ name, variable: variable as tf.Variable }));
}

/** A plugin's saveState(), a failure that is not already a TapfitError named (a bare TypeError said nothing about who). */
function pluginSaveState(plugin: TapfitPlugin): PluginState {
  try {
    return plugin.saveState!();
  } catch (err) {
    if (err instanceof TapfitError) throw err; // it says what to do, with its own code (e.g. lora's "unmerge first")
    throw pluginCallFailure(plugin.name, 'saveState()', err);
  }
}

/** Everything a trainer needs to continue exactly where it was (reads tensors back). */
export async function captureCheckpoint(p: TrainerParts): Promise<{ manifest: Manifest; tensors: Buffer }> {
  refuseNonFinite('model variables', p.variables.map((v) => ({ name: v.name, tensor: v })));
  const w = new TensorWriter();
  const variables = p.variables.map((v) => ({ name: v.name, shape: [...v.shape], ref: w.add(v) }));
  let optimizer: Manifest['optimizer'];
  if (p.stepper instanceof ChainStepper) {
    const state = p.stepper.state;
    refuseNonFinite('optimizer state of', Object.entries(state).flatMap(([name, part]) => stateTensors(part).map((tensor) => ({ name, tensor }))));
    const suppliedBy = Object.fromEntries(Object.entries(p.stepper.suppliedBy).map(([name, plugins]) => [name, [...plugins]]));
    optimizer = { kind: 'chain', names: [...p.stepper.names], suppliedBy, state: w.encode(state) };
  } else {
    const opt = (p.stepper as OptimizerStepper).optimizer;
    const weights = await opt.getWeights();
    try {
      refuseNonFinite('optimizer weights', weights);
    } catch (err) {
      freeFresh(weights);
      throw err;
    }
    optimizer = {
      kind: 'optimizer',
      className: opt.getClassName(),
      weights: weights.map((x) => ({ name: x.name, ref: w.add(x.tensor) })),
      fields: optimizerFields(opt).map((f) => ({ name: f.name, ref: w.add(f.variable) })),
    };
    freeFresh(weights);
  }
  const pluginState: Manifest['pluginState'] = {};
  for (const plugin of p.plugins) {
    if (!plugin.saveState) continue;
    const s = pluginSaveState(plugin);
    refuseLossyPluginJson(plugin.name, s.json); // before anything is written
    pluginState[plugin.name] = { json: s.json, tensors: s.tensors && (w.encode(s.tensors) as Record<string, { $tensor: number }>) };
  }
  const manifest: Manifest = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    coreVersion: CORE_VERSION,
    createdAt: new Date().toISOString(),
    step: p.step,
    skipped: p.skipped,
    trainOnBatchCalls: p.trainOnBatchCalls,
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

/**
 * A diverged run's state is not saved: in a rotation its checkpoint would replace the last
 * good one. One scalar is read back; the names are looked for only when something is bad.
 */
function refuseNonFinite(what: string, named: readonly { name: string; tensor: tf.Tensor }[]): void {
  if (!anyNonFinite(named.map((n) => n.tensor))) return;
  const bad = [...new Set(named.filter((n) => anyNonFinite([n.tensor])).map((n) => `'${n.name}'`))];
  throw new TapfitError(
    ErrorCodes.NON_FINITE,
    `save: ${what} ${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ` and ${bad.length - 3} more` : ''} hold NaN or Infinity: the run has diverged. Nothing was written (a checkpoint of it could replace a good one). ` +
      'Resume from an earlier checkpoint (Trainer.resume) and lower the learning rate or add clipByGlobalNorm; model.save() still writes the model for inspection.',
  );
}

/** Renames object keys that are saved variable names to the current variable names. */
function renameParams(value: unknown, names: ReadonlyMap<string, string>): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value) && !('$tensor' in value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [names.get(k) ?? k, renameParams(v, names)]));
  }
  return value;
}

/** The top-level keys that are saved variable names, renamed to this model's (a plugin's flat state map). */
function renameKeys<T>(map: Record<string, T>, names: ReadonlyMap<string, string>): Record<string, T> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [names.get(k) ?? k, v]));
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** A checkpoint decoded and checked against the trainer, not yet applied. */
interface Loaded {
  values: tf.Tensor[];
  chainState?: Record<string, TransformState>;
  optimizer?: { weights: { name: string; tensor: tf.Tensor }[]; fields: { variable: tf.Variable; value: tf.Tensor }[] };
  plugins: { plugin: TapfitPlugin; state: PluginState }[];
}

/**
 * Loads a checkpoint into the trainer in two phases. Phase 1 checks everything (model
 * layout, dtypes, shapes, the optimizer's layout, the plugins that saved state and their
 * `checkState`) and decodes every tensor, changing nothing. Phase 2 applies, after
 * copying what it replaces (`tf.clone` shares the buffers, so this is cheap); if any step
 * throws (a plugin's `loadState`), everything applied is put back, so a failed resume
 * leaves the variables, the optimizer and every plugin exactly as they were.
 */
export async function restoreCheckpoint(m: Manifest, reader: TensorReader, p: TrainerParts, where: string): Promise<void> {
  const created: tf.Tensor[] = [];
  let loaded: Loaded;
  try {
    loaded = checkAndDecode(m, reader, p, where, created);
  } catch (err) {
    tf.dispose(created);
    throw err;
  }
  const undo: (() => void | Promise<void>)[] = [];
  const copies = new Set<tf.Tensor>();
  try {
    await apply(loaded, p, where, undo, copies);
  } catch (err) {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        // keep undoing the rest; the first error is the one to report
      }
    }
    tf.dispose(created.filter((t) => !t.isDisposed));
    tf.dispose([...copies].filter((t) => !t.isDisposed));
    throw err;
  }
  tf.dispose([...copies]);
}

function checkAndDecode(m: Manifest, reader: TensorReader, p: TrainerParts, where: string, created: tf.Tensor[]): Loaded {
  const fail = (why: string): never => {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: ${why}`);
  };
  const track = <T>(x: T): T => (created.push(...stateTensors(x as TransformState)), x);
  const registered = new Map(p.plugins.map((x) => [x.name, x]));
  // First: a plugin added or removed since the save (LoRA, OnlineNorm) also changes the model's variables, and the plugin is the part to name.
  for (const name of Object.keys(m.pluginState)) {
    const plugin = registered.get(name);
    if (!plugin) fail(`the checkpoint needs plugin '${name}' (it holds its state), which is not registered. Add '${name}' to the plugins.`);
    if (!plugin!.loadState || !plugin!.saveState) fail(`plugin '${name}' has saved state but no saveState()/loadState(); use the plugin version that wrote the checkpoint.`);
  }
  const pluginHint = pluginChange(m, registered);
  if (m.variables.length !== p.variables.length) {
    fail(`the checkpoint holds ${m.variables.length} model variables but this model has ${p.variables.length}; ${pluginHint || 'resume with the model architecture that was saved.'}`);
  }
  const moved: string[] = [];
  m.variables.forEach((sv, i) => {
    const v = p.variables[i];
    const e = reader.entry(sv.ref.$tensor);
    if (!sameShape(e.shape, v.shape) || !sameShape(sv.shape, v.shape)) {
      const shape = sameShape(e.shape, sv.shape) ? `[${e.shape}]` : `[${sv.shape}] (its tensor [${e.shape}])`;
      fail(`model variable ${i} ('${sv.name}') was saved with shape ${shape} but this model's ('${v.name}') is [${v.shape}]; ${pluginHint || 'resume with the architecture that was saved.'}`);
    }
    if (e.dtype !== v.dtype) {
      fail(`model variable ${i} ('${sv.name}') was saved as ${e.dtype} but this model's ('${v.name}') is ${v.dtype}; resume with the architecture that was saved.`);
    }
    if (!sameVariable(sv.name, v.name)) moved.push(`saved '${sv.name}' would be loaded into '${v.name}'`);
  });
  if (moved.length) {
    fail(
      `the model's variables have other names than when saved (${moved.slice(0, 3).join('; ')}${moved.length > 3 ? `; and ${moved.length - 3} more` : ''}): ` +
        'the layer names or their order changed, or this is another model. Variables load by position, so resume with the model definition that was saved (the same layers, names and order).',
    );
  }
  const names = new Map(m.variables.map((sv, i) => [sv.name, p.variables[i].name]));

  const loaded: Loaded = { values: [], plugins: [] };
  let refusal: string | undefined;
  if (p.stepper instanceof ChainStepper) {
    if (m.optimizer.kind !== 'chain') fail(`the checkpoint was saved with a black-box ${(m.optimizer as { className: string }).className} optimizer; resume with the same optimizer.`);
    const o = m.optimizer as Extract<Manifest['optimizer'], { kind: 'chain' }>;
    // First: a plugin that replaced a member keeping its name passes the names check, and the layout check cannot name it.
    const change = o.suppliedBy && supplierChange(m, o.suppliedBy, p.stepper, registered);
    if (change && !change.samePlugins) fail(change.message);
    // The same plugins with other options: their checkState (below) may name the option, so the refusal waits for it.
    if (change) refusal = change.message;
    else {
      if (o.names.join(',') !== p.stepper.names.join(',')) {
        fail(`the update chain was [${o.names.join(', ')}] when saved but is [${p.stepper.names.join(', ')}] now; resume with the same optimizer and plugins.`);
      }
      loaded.chainState = track(reader.decode(renameParams(o.state, names)) as Record<string, TransformState>);
      try {
        checkStateMatches(p.stepper.state, loaded.chainState, 'optimizer state');
      } catch (err) {
        fail(`${(err as Error).message}${trainableChange(loaded.chainState, p.stepper.state, p.variables)}${o.suppliedBy ? '' : unrecordedSuppliers(m, p.stepper, registered)}`);
      }
    }
  } else {
    if (m.optimizer.kind !== 'optimizer') fail('the checkpoint was saved with a step-transform chain; resume with the same optimizer.');
    const o = m.optimizer as Extract<Manifest['optimizer'], { kind: 'optimizer' }>;
    const opt = (p.stepper as OptimizerStepper).optimizer;
    if (o.className !== opt.getClassName()) fail(`the checkpoint was saved with a black-box ${o.className} optimizer but this trainer's is ${opt.getClassName()}; resume with the same optimizer.`);
    const weights = o.weights.map((x) => ({ name: optimizerWeightName(x.name, reader.entry(x.ref.$tensor)), ref: x.ref }));
    const fields = optimizerFields(opt);
    const savedFields = (o.fields ?? []).flatMap((f) => {
      const target = fields.find((x) => x.name === f.name);
      // An optimizer without this field (another tfjs version) recomputes it in setWeights().
      if (!target) return [];
      const e = reader.entry(f.ref.$tensor);
      if (e.dtype !== target.variable.dtype || !sameShape(e.shape, target.variable.shape)) {
        fail(`${o.className} optimizer variable '${f.name}' was saved as ${e.dtype}[${e.shape}] but is ${target.variable.dtype}[${target.variable.shape}] now; resume with the same optimizer.`);
      }
      return [{ variable: target.variable, ref: f.ref }];
    });
    loaded.optimizer = {
      weights: weights.map((x) => ({ name: x.name, tensor: track(reader.tensor(x.ref.$tensor)) })),
      fields: savedFields.map((f) => ({ variable: f.variable, value: track(reader.tensor(f.ref.$tensor)) })),
    };
  }
  loaded.values = m.variables.map((sv) => track(reader.tensor(sv.ref.$tensor)));
  for (const [name, s] of Object.entries(m.pluginState)) {
    const plugin = registered.get(name)!;
    // Tensors a plugin keyed by a model variable's name come back under that variable's name now (tfjs numbers names per process).
    const state: PluginState = { json: s.json, tensors: s.tensors ? track(reader.decode(renameKeys(s.tensors, names)) as Record<string, tf.Tensor>) : undefined };
    try {
      refusePromise(plugin.checkState?.(state), name, 'checkState');
    } catch (err) {
      throw pluginError(err, name, 'checkState', where);
    }
    loaded.plugins.push({ plugin, state });
  }
  if (refusal) fail(refusal);
  return loaded;

  /**
   * A tfjs optimizer names its weights 'iter' (a scalar) or '<variable name>/<slot>' with
   * the variable's shape; checks that, and renames to this model's variable.
   */
  function optimizerWeightName(saved: string, e: { shape: number[]; dtype: string }): string {
    const o = m.optimizer as Extract<Manifest['optimizer'], { kind: 'optimizer' }>;
    if (saved === 'iter') {
      if (e.shape.length !== 0) fail(`the ${o.className} optimizer's 'iter' weight has shape [${e.shape}], not a scalar; the checkpoint is corrupt.`);
      return saved;
    }
    const cut = saved.lastIndexOf('/');
    const i = cut < 0 ? -1 : m.variables.findIndex((sv) => sv.name === saved.slice(0, cut));
    if (i < 0) fail(`the ${o.className} optimizer weight '${saved}' belongs to none of the saved model variables; the checkpoint is corrupt.`);
    const v = p.variables[i];
    if (e.dtype !== v.dtype || !sameShape(e.shape, v.shape)) {
      fail(`the ${o.className} optimizer weight '${saved}' is ${e.dtype}[${e.shape}] but its variable '${v.name}' is ${v.dtype}[${v.shape}]; the checkpoint is corrupt or belongs to another model.`);
    }
    return v.name + saved.slice(cut);
  }
}

/**
 * Plugins registered now but not when saved, or the other way round, as the likely cause
 * of a model-variable mismatch (a plugin may add or swap model variables); '' when the
 * same plugins are registered.
 */
function pluginChange(m: Manifest, registered: ReadonlyMap<string, TapfitPlugin>): string {
  const added = [...registered.keys()].filter((n) => !m.plugins.includes(n));
  const removed = m.plugins.filter((n) => !registered.has(n));
  if (!added.length && !removed.length) return '';
  const changes = [
    ...added.map((n) => `plugin '${n}' is registered now but was not when saved`),
    ...removed.map((n) => `plugin '${n}' was registered when saved but is not now`),
  ];
  return `${changes.join('; ')}, and plugins may add or swap model variables. Resume with the plugins the run was saved with (${m.plugins.length ? quoted(m.plugins) : 'none'}) and the model architecture that was saved.`;
}

const quoted =
 (names: readonly string[]) => names.map((n) => `'${n}'`).join(', ');

/**
 * Why the plugins that supplied the update chain's members differ between the checkpoint
 * and this trainer, naming each member and plugin and the fix; undefined when they agree.
 * Members no plugin supplied then or now are left to the names check.
 */
function supplierChange(
  m: Manifest,
  saved: Readonly<Record<string, readonly string[]>>,
  stepper: ChainStepper,
  registered: ReadonlyMap<string, TapfitPlugin>,
): { message: string; samePlugins: boolean } | undefined {
  const o = m.optimizer as Extract<Manifest['optimizer'], { kind: 'chain' }>;
  const now = stepper.suppliedBy;
  const by = (plugins: readonly string[]) => (plugins.length ? `supplied by plugin ${plugins.map((n) => `'${n}'`).join(' then ')}` : "the optimizer's own");
  const changes: string[] = [];
  for (const name of new Set([...o.names, ...stepper.names])) {
    const then = saved[name] ?? [];
    const later = now[name] ?? [];
    if (then.join('\0') === later.join('\0')) continue;
    const was = o.names.includes(name) ? `was ${by(then)} when saved` : 'was not in the chain when saved';
    const is = stepper.names.includes(name) ? `is ${by(later)} now` : 'is not in the chain now';
    changes.push(`chain member '${name}' ${was} but ${is}`);
  }
  if (!changes.length) return undefined;
  const add = [...new Set(Object.values(saved).flat())].filter((n) => !registered.has(n));
  const remove = [...new Set(Object.values(now).flat())].filter((n) => !m.plugins.includes(n));
  const fix = [...(add.length ? [`add ${quoted(add)}`] : []), ...(remove.length ? [`remove ${quoted(remove)}`] : [])].join(', ') || 'with the options they were saved with';
  const message =
    `${changes.join('; ')}, so the saved optimizer state is not this chain's. ` +
    `Resume with the plugins the run was saved with (${fix}), or start a fresh run (new Trainer) with this configuration.`;
  return { message, samePlugins: !add.length && !remove.length };
}

/**
 * When the saved optimizer state holds entries for other model variables than the chain
 * trains now (`layer.trainable` set differently than when saved): which, and how to resume.
 */
function trainableChange(saved: TransformState, now: TransformState, variables: readonly tf.Variable[]): string {
  const names = new Set(variables.map((v) => v.name));
  const keyed = (state: TransformState) => {
    const found = new Set<string>();
    const walk = (value: unknown) => {
      if (typeof value !== 'object' || value === null || value instanceof tf.Tensor) return;
      for (const [k, v] of Object.entries(value)) {
        if (names.has(k)) found.add(k);
        walk(v);
      }
    };
    walk(state);
    return found;
  };
  const before = keyed(saved);
  const after = keyed(now);
  const frozen = [...before].filter((n) => !after.has(n));
  const unfrozen = [...after].filter((n) => !before.has(n));
  if (!frozen.length && !unfrozen.length) return '';
  const few = (list: string[]) => list.slice(0, 4).join(', ') + (list.length > 4 ? ` and ${list.length - 4} more` : '');
  const which = [frozen.length ? `trained when saved, not trainable now: ${few(frozen)}` : '', unfrozen.length ? `trainable now, not when saved: ${few(unfrozen)}` : ''].filter(Boolean).join('; ');
  return ` The model's trainable variables differ from when it was saved (${which}): resume with layer.trainable as it was then; a later fit follows a change made after the resume.`;
}

/**
 * For a checkpoint that does not record who supplied the chain's members (written before
 * suppliedBy existed) whose optimizer state does not fit: the plugins that may be why.
 */
function unrecordedSuppliers(m: Manifest, stepper: ChainStepper, registered: ReadonlyMap<string, TapfitPlugin>): string {
  const now = Object.entries(stepper.suppliedBy).map(([name, plugins]) => `chain member '${name}' is supplied by plugin ${quoted(plugins)} now`);
  const gone = m.plugins.filter((n) => !registered.has(n));
  const hints = [...now, ...(gone.length ? [`plugin(s) ${quoted(gone)} registered when saving are not registered now`] : [])];
  if (!hints.length) return '';
  return ` This checkpoint does not record which plugins replaced chain members, and a plugin added or removed since may be why: ${hints.join('; ')}. Resume with the plugins the run was saved with.`;
}

/**
 * Phase 2: every replacement first records how to put back what it replaces. `copies`
 * are freed at the end, except those an undo hands back to an owner (chain, plugin).
 */
async function apply(loaded: Loaded, p: TrainerParts, where: string, undo: (() => void | Promise<void>)[], copies: Set<tf.Tensor>): Promise<void> {
  const copy = (t: tf.Tensor) => {
    const c = tf.clone(t);
    copies.add(c);
    return c;
  };
  const handBack = (value: unknown) => stateTensors(value as TransformState).forEach((t) => copies.delete(t));

  p.variables.forEach((v, i) => {
    const before = copy(v);
    undo.push(() => v.assign(before));
    v.assign(loaded.values[i]);
  });
  tf.dispose(loaded.values);

  if (loaded.chainState) {
    const stepper = p.stepper as ChainStepper;
    const before = mapTensors(stepper.state, copy) as Record<string, TransformState>;
    undo.push(() => {
      handBack(before);
      stepper.setState(before);
    });
    stepper.setState(loaded.chainState);
  }

  if (loaded.optimizer) {
    const opt = (p.stepper as OptimizerStepper).optimizer;
    const current = await opt.getWeights();
    const weights = current.map((x) => ({ name: x.name, tensor: copy(x.tensor) }));
    freeFresh(current);
    const fields = optimizerFields(opt).map((f) => ({ variable: f.variable, value: copy(f.variable) }));
    undo.push(async () => {
      await replaceWeights(opt, weights);
      for (const f of fields) f.variable.assign(f.value);
    });
    await replaceWeights(opt, loaded.optimizer.weights);
    for (const f of loaded.optimizer.fields) f.variable.assign(f.value);
    tf.dispose(loaded.optimizer.weights.map((x) => x.tensor));
    tf.dispose(loaded.optimizer.fields.map((f) => f.value));
  }

  for (const { plugin, state } of loaded.plugins) {
    const saved = pluginSaveState(plugin);
    const before: PluginState = {
      json: saved.json === undefined ? undefined : JSON.parse(JSON.stringify(saved.json)),
      tensors: saved.tensors && (mapTensors(saved.tensors, copy) as Record<string, tf.Tensor>),
    };
    undo.push(async () => {
      handBack(before.tensors);
      await plugin.loadState!(before); // a refused async loadState (below) is at least awaited when put back
    });
    try {
      refusePromise(plugin.loadState!(state), plugin.name, 'loadState');
    } catch (err) {
      throw pluginError(err, plugin.name, 'loadState', where);
    }
  }
}

/** getWeights() returns the slot variables and a fresh 'iter' scalar, which the caller frees. */
function freeFresh(weights: { tensor: tf.Tensor }[]): void {
  tf.dispose(weights.filter((x) => !(x.tensor instanceof tf.Variable)).map((x) => x.tensor));
}

/** setWeights(), then frees the slot variables it dropped (tfjs optimizers build new ones from the values). */
async function replaceWeights(opt: tf.Optimizer, weights: { name: string; tensor: tf.Tensor }[]): Promise<void> {
  const before = await opt.getWeights();
  await opt.setWeights(weights);
  const after = await opt.getWeights();
  const kept = new Set(after.map((x) => x.tensor));
  tf.dispose(before.filter((x) => !kept.has(x.tensor)).map((x) => x.tensor));
  freeFresh(after);
}

function mapTensors(value: unknown, f: (t: tf.Tensor) => tf.Tensor): unknown {
  if (value instanceof tf.Tensor) return f(value);
  if (Array.isArray(value)) return value.map((v) => mapTensors(v, f));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapTensors(v, f)]));
  return value;
}

/** A plugin's own TapfitError passes through; anything else is wrapped to name the plugin. */
function pluginError(err: unknown, plugin: string, method: string, where: string): Error {
  if (err instanceof TapfitError) return err;
  return new TapfitError(
    ErrorCodes.CHECKPOINT,
    `${where}: plugin '${plugin}' refused its saved state in ${method}(): ${err instanceof Error ? err.message : String(err)}. Resume with the plugin version and options that wrote the checkpoint.`,
    { cause: err },
  );
}
