import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

/**
 * Every use of tfjs-core's private surface, in one place. tfjs exports the engine
 * (`tf.engine()`) but not the fields below, which may change in any release; this
 * file is written against one release line, and `assertEngineInternals` checks the
 * surface once at start-up so a different tfjs fails there, by name, instead of
 * deep inside a training step.
 */
export const SUPPORTED_TFJS = '4.22.x';

type Grad = tf.Tensor | null;

/** One entry of the engine's gradient tape (tfjs-core's TapeNode, not exported). */
export interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: Grad[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

/** The engine's bookkeeping for one data id. */
export interface EngineTensorInfo {
  backend: tf.KernelBackend;
  shape: number[];
  dtype: tf.DataType;
  bytes: number;
}

type RunKernel = (kernelName: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap) => tf.Tensor | tf.Tensor[];
type RunKernelFunc = (params: object) => tf.Tensor | tf.Tensor[];
type MoveData = (backend: tf.KernelBackend, dataId: tf.DataId) => void;
type Keep = <T extends tf.Tensor>(result: T) => T;
type TrackTensor = (a: tf.Tensor, backend: tf.KernelBackend | null) => void;
type DisposeTensor = (a: tf.Tensor) => void;
type Gradients = (f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean) => { value: tf.Tensor; grads: Grad[] };
type AddTapeNode = (kernelName: string, inputs: Record<string, tf.Tensor>, outputs: tf.Tensor[], gradientsFunc: unknown, saved: tf.Tensor[], attrs: object) => void;

interface EngineState {
  activeTape?: TapeNode[] | null;
  gradientDepth: number;
  kernelDepth: number;
  registeredVariables: Record<string, tf.Variable>;
  tensorInfo: WeakMap<tf.DataId, EngineTensorInfo>;
}

interface EngineInternals {
  state: EngineState;
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
  registry: Record<string, tf.KernelBackend>;
  registryFactory: Record<string, unknown>;
  runKernel: RunKernel;
  runKernelFunc: RunKernelFunc;
  moveData: MoveData;
  gradients: Gradients;
  addTapeNode: AddTapeNode;
  keep: Keep;
  trackTensor: TrackTensor;
  disposeTensor: DisposeTensor;
  nextTensorId(): number;
}

function engine(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

type ClassEntry = [tf.serialization.SerializableConstructor<tf.serialization.Serializable>, tf.serialization.FromConfigMethod<tf.serialization.Serializable>];

function classNameMap(): Record<string, ClassEntry> {
  return tf.serialization.SerializationMap.getMap().classNameMap;
}

const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null;
const isFunction = (v: unknown): boolean => typeof v === 'function';

/** Each field this file reads or patches, where to find it, and what it must be. */
const SURFACE: { name: string; read: () => unknown; ok: (v: unknown) => boolean; expected: string }[] = [
  ...(['registry', 'registryFactory', 'state'] as const).map((k) => ({ name: `engine.${k}`, read: () => engine()[k], ok: isObject, expected: 'an object' })),
  { name: 'engine.state.gradientDepth', read: () => engine().state?.gradientDepth, ok: (v) => typeof v === 'number', expected: 'a number' },
  { name: 'engine.state.kernelDepth', read: () => engine().state?.kernelDepth, ok: (v) => typeof v === 'number', expected: 'a number' },
  { name: 'engine.state.activeTape', read: () => engine().state?.activeTape, ok: (v) => v == null || Array.isArray(v), expected: 'null or an array' },
  { name: 'engine.state.registeredVariables', read: () => engine().state?.registeredVariables, ok: isObject, expected: 'an object' },
  { name: 'engine.state.tensorInfo', read: () => engine().state?.tensorInfo, ok: (v) => v instanceof WeakMap || v instanceof Map, expected: 'a WeakMap' },
  ...(['runKernel', 'runKernelFunc', 'moveData', 'gradients', 'addTapeNode', 'keep', 'trackTensor', 'disposeTensor', 'nextTensorId', 'startTape', 'endTape', 'scopedRun', 'tidy'] as const).map((k) => ({
    name: `engine.${k}()`,
    read: () => engine()[k],
    ok: isFunction,
    expected: 'a method',
  })),
  { name: 'tf.serialization.SerializationMap.getMap().classNameMap', read: () => classNameMap(), ok: isObject, expected: 'an object' },
];

/** Throws a TapfitError (TAPFIT_E_TFJS_INTERNALS) naming every field of the surface that is missing or changed. */
export function checkEngineInternals(): void {
  const broken = SURFACE.flatMap(({ name, read, ok, expected }) => {
    let value: unknown;
    try {
      value = read();
    } catch {
      value = undefined;
    }
    return ok(value) ? [] : [`${name} (expected ${expected}, found ${value === undefined ? 'nothing' : typeof value})`];
  });
  if (!broken.length) return;
  throw new TapfitError(
    ErrorCodes.TFJS_INTERNALS,
    `tapfit relies on tfjs-core internals that this tfjs does not have: ${broken.join('; ')}. ` +
      `Installed: @tensorflow/tfjs ${tf.version.tfjs ?? 'unknown'} (tfjs-core ${tf.version_core}); supported: ${SUPPORTED_TFJS}. ` +
      `Install @tensorflow/tfjs@~4.22.0 (and the same version of tfjs-backend-wasm / tfjs-node), or a tapfit release made for your tfjs.`,
  );
}

let asserted = false;

/** `checkEngineInternals` once per process (selectBackend, Trainer.setup and every patch call it). */
export function assertEngineInternals(): void {
  if (asserted) return;
  checkEngineInternals();
  asserted = true;
}

/** Replaces one engine method by `wrap(original)`; returns the undo. */
function patch<K extends 'runKernel' | 'runKernelFunc' | 'moveData' | 'gradients' | 'addTapeNode' | 'keep' | 'trackTensor' | 'disposeTensor'>(
  name: K,
  wrap: (original: EngineInternals[K]) => EngineInternals[K],
): () => void {
  assertEngineInternals();
  const e = engine();
  const own = Object.prototype.hasOwnProperty.call(e, name);
  const previous = e[name];
  e[name] = wrap((previous as (...args: unknown[]) => unknown).bind(e) as EngineInternals[K]);
  return () => {
    if (own) e[name] = previous;
    else delete (e as unknown as Record<string, unknown>)[name];
  };
}

/** Every op and gradient reaches a kernel through `engine.runKernel`: the place to rewrite kernel errors. */
export function wrapRunKernel(wrap: (original: RunKernel) => RunKernel): () => void {
  return patch('runKernel', wrap);
}

/** `runKernelFunc` runs each kernel (and each customGrad forward), nested kernels included: the boundary of one kernel's allocations. */
export function wrapRunKernelFunc(wrap: (original: RunKernelFunc) => RunKernelFunc): () => void {
  return patch('runKernelFunc', wrap);
}

/** `moveData` frees a tensor on its old backend before allocating it on the new one: the place to check the new allocation first. */
export function wrapMoveData(wrap: (original: MoveData) => MoveData): () => void {
  return patch('moveData', wrap);
}

/** `gradients` (under tf.grads, variableGrads, ...) keeps the tape's saved tensors when it throws: the place to free them. */
export function wrapGradients(wrap: (original: Gradients) => Gradients): () => void {
  return patch('gradients', wrap);
}

/** `addTapeNode` appends an op to the gradient tape (kernels, customGrad ops, and the clones that save tensors for a backward): the place to keep the tape in order. */
export function wrapAddTapeNode(wrap: (original: AddTapeNode) => AddTapeNode): () => void {
  return patch('addTapeNode', wrap);
}

/** The tape being recorded, null outside a gradient. */
export function recordingTape(): TapeNode[] | null {
  return engine().state.activeTape ?? null;
}

/** `keep` is how a kernel saves tensors for its backward (the engine's saves, customGrad's save): the place to see what a failed kernel kept. */
export function wrapKeep(wrap: (original: Keep) => Keep): () => void {
  return patch('keep', wrap);
}

/** `trackTensor` and `disposeTensor` are where a tensor starts and stops holding a reference to its data. */
export function wrapTensorTracking(wrap: { track: (original: TrackTensor) => TrackTensor; dispose: (original: DisposeTensor) => DisposeTensor }): () => void {
  const untrack = patch('trackTensor', wrap.track);
  const undispose = patch('disposeTensor', wrap.dispose);
  return () => {
    undispose();
    untrack();
  };
}

/** An id no tensor made so far has and every later tensor exceeds (ids only grow; this one is used up). */
export function tensorIdWatermark(): number {
  return engine().nextTensorId();
}

/** How many gradient tapes are recording (0: none); a tape inside another records second derivatives. */
export function gradientDepth(): number {
  return engine().state.gradientDepth;
}

/** How many kernels are running (0: none; an op's kernel that runs other ops nests them). */
export function kernelDepth(): number {
  return engine().state.kernelDepth;
}

/** The live tf.Variables (a model's weights, a tfjs optimizer's state). */
export function liveVariables(): tf.Variable[] {
  return Object.values(engine().state.registeredVariables);
}

/** Runs `f` as if no tape were recording, then puts the engine's tape back as it was (a nested tf.grads resets it). */
export function withTapeSuspended<T>(f: () => T): T {
  const state = engine().state;
  const { activeTape, gradientDepth } = state;
  state.gradientDepth = 0;
  try {
    return f();
  } finally {
    state.activeTape = activeTape;
    state.gradientDepth = gradientDepth;
  }
}

/**
 * Runs `f` (inside a tidy) recording a new top-level tape, as `engine.gradients` does
 * before its backward; returns f's result and the tape. The caller runs the backward
 * and then calls `releaseTape`.
 */
export function recordTape(f: () => tf.Tensor): { y: tf.Tensor; tape: TapeNode[] } {
  const e = engine();
  const y = e.scopedRun(
    () => e.startTape(),
    () => e.endTape(),
    () => e.tidy('forward', f),
  );
  return { y, tape: e.state.activeTape ?? [] };
}

/** Frees the saved tensors of the top-level tape and drops it (the engine keeps them until its own backward ends). */
export function releaseTape(): void {
  const state = engine().state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;
  for (const node of state.activeTape) tf.dispose(node.saved ?? []);
  state.activeTape = null;
}

/** `engine.gradients` with `allowNoGradients` (public tf.grads requires every target to get a gradient). */
export function engineGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients = false): { value: tf.Tensor; grads: Grad[] } {
  return engine().gradients(f, xs, dy, allowNoGradients);
}

/** Runs a kernel by name (a gradient that needs a backprop kernel no public op exposes with these attrs). */
export function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap): tf.Tensor | tf.Tensor[] {
  return engine().runKernel(kernelName, inputs, attrs);
}

/** The engine's record of a data id (shape, dtype, bytes, backend), or undefined when no tensor holds it. */
export function engineTensorInfo(dataId: tf.DataId): EngineTensorInfo | undefined {
  return engine().state.tensorInfo.get(dataId);
}

/** Whether a backend factory is registered, without initialising it (`tf.findBackend` would). */
export function backendRegistered(name: string): boolean {
  return engine().registryFactory[name] != null;
}

/** Whether a backend's asynchronous initialisation is under way (tfjs then refuses synchronous ops until it ends). */
export function backendInitPending(): boolean {
  return (engine() as unknown as { pendingBackendInit?: unknown }).pendingBackendInit != null;
}

/**
 * Marks the initialised cpu backend as used: on its first tensor it prints tfjs's
 * "Hi, looks like you are running TensorFlow.js in Node.js..." banner (a private
 * `firstUse` flag checked in `write`). No-op when cpu is not initialised or the flag is gone.
 */
export function markCpuBackendUsed(): void {
  const cpu = engine().registry['cpu'] as unknown as { firstUse?: unknown } | undefined;
  if (cpu && typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
}

/** Whether a backend has been initialised in this process, without initialising it. */
export function backendInitialised(name: string): boolean {
  return engine().registry[name] != null;
}

/** The initialised instance of a backend, without initialising it (`tf.engine().reset()` makes a new one on the next init). */
export function initialisedBackend(name: string): tf.KernelBackend | undefined {
  return engine().registry[name] ?? undefined;
}

/**
 * How many asynchronous backend initialisations tfjs has started or made obsolete (its
 * `pendingBackendInitId`): tf.setBackend of a backend with an async init, tf.removeBackend of
 * the pending one and tf.engine().reset() each add one, and an init that finds it moved on
 * since it began reports failure (setBackend resolves to false) without logging anything.
 * Undefined when this tfjs has no such counter.
 */
export function backendInitGeneration(): number | undefined {
  const id = (engine() as unknown as { pendingBackendInitId?: unknown }).pendingBackendInitId;
  return typeof id === 'number' ? id : undefined;
}

/** tfjs's gradient registry (kernel name to gradient), which it does not list publicly; null when not found. */
export function gradientRegistry(): ReadonlyMap<string, tf.GradConfig> | null {
  const registry = (globalThis as { _tfGlobals?: Map<string, unknown> })._tfGlobals?.get('gradRegistry');
  return registry instanceof Map ? (registry as Map<string, tf.GradConfig>) : null;
}

/** Names of the backends registered so far (initialised or not). */
export function registeredBackendNames(): string[] {
  return Object.keys(engine().registryFactory ?? {});
}

/**
 * Calls `listener(name)` after every backend registration from now on (a backend package
 * registers its backend as it loads). False when this tfjs has no `engine.registerBackend`.
 */
export function watchBackendRegistrations(listener: (name: string) => void): boolean {
  const e = engine() as unknown as { registerBackend?: (name: string, ...rest: unknown[]) => boolean };
  const original = e.registerBackend;
  if (typeof original !== 'function') return false;
  e.registerBackend = (name, ...rest) => {
    const registered = original.call(e, name, ...rest);
    listener(name);
    return registered;
  };
  return true;
}

/** A variable name no live tf.Variable has: tfjs keeps variable names global and refuses a duplicate. */
export function uniqueVariableName(base: string): string {
  assertEngineInternals();
  const taken = engine().state.registeredVariables;
  let name = base;
  for (let i = 1; name in taken; i++) name = `${base}_${i}`;
  return name;
}

/** A class registered with tf.serialization.registerClass (what tf.loadLayersModel rebuilds from), or undefined. */
export function registeredLayerClass(className: string): { cls: ClassEntry[0]; fromConfig: ClassEntry[1] } | undefined {
  assertEngineInternals();
  const entry = classNameMap()[className];
  return entry ? { cls: entry[0], fromConfig: entry[1] } : undefined;
}

/**
 * The exports object of the tfjs-core copy that @tensorflow/tfjs re-exports (its
 * `tf.softmax` and the namespace tfjs-layers calls are getters into it), so an op
 * replaced there is the op every caller gets; null when that copy cannot be found or is
 * not the one `tf` uses (two copies installed).
 */
export function tfjsCoreExports(): Record<string, unknown> | null {
  try {
    const tfjsDir = require('node:path').dirname(require.resolve('@tensorflow/tfjs/package.json')) as string;
    const core = require(require.resolve('@tensorflow/tfjs-core', { paths: [tfjsDir] })) as Record<string, unknown>;
    return core.softmax === tf.softmax && core.norm === tf.norm ? core : null;
  } catch {
    return null;
  }
}
