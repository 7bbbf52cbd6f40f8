import type * as tf from '@tensorflow/tfjs';
import type { DependencyContainer, InjectionToken } from 'tsyringe';
import type { TapOnlyHooks } from '../hooks/hooks';
import type { TrainableModel } from '../model/trainable-model';
import type { Logger } from '../services/tokens';
import type { TransformState } from '../transforms/types';

/** A plugin's checkpointed state: JSON plus named tensors (copied on save). */
export interface PluginState {
  json?: unknown;
  tensors?: Record<string, tf.Tensor>;
}

/**
 * The plugin contract. A plugin is a plain object or a class instance with this shape
 * (a class with a no-argument constructor may be passed too; the trainer's container
 * builds it). Metadata is checked at registration, before any plugin is applied.
 */
export interface TapfitPlugin {
  /** Unique per trainer; names this plugin in ordering constraints, errors and checkpoints. */
  readonly name: string;
  /** Semver range of @tapfit/core this plugin works with, e.g. '^0.1.0'. */
  readonly core: string;
  /** Plugins that must be registered too. */
  readonly requires?: readonly string[];
  /**
   * Plugins that must not be registered together with this one: a name, or
   * `{ plugin, reason }` to say why (the registration error quotes the reason).
   */
  readonly conflicts?: readonly PluginConflict[];
  /**
   * Services this plugin replaces with `services.register` (e.g. `[Tokens.Backprop]`),
   * fastify's `decorate` rule: replacing a registered service without declaring it is
   * an error, and two plugins that provide the same service conflict at registration.
   */
  readonly provides?: readonly InjectionToken<unknown>[];
  /**
   * Tap hooks and register services. Runs once, synchronously, at registration. Typed
   * `void | undefined` so an `async apply` is a compile error (nothing would await it; the
   * trainer refuses a returned promise): do async work in a `setup` tap, which may be async.
   */
  apply(api: PluginApi): void | undefined;
  /**
   * Namespaced state saved in checkpoints under the plugin's name. Its tensors stay the
   * plugin's (the core reads them and frees nothing): return kept tensors it owns.
   */
  saveState?(): PluginState;
  /**
   * Throw (a TapfitError naming the mismatch and the fix) if `state` cannot be loaded;
   * change nothing and keep none of its tensors. The resume calls it for every plugin
   * before it writes anything, so a refused state leaves the trainer untouched. Synchronous,
   * as `loadState` and `dispose` are (an async one is a compile error and refused at run time).
   */
  checkState?(state: PluginState): void | undefined;
  /**
   * Restore saved state; takes ownership of its tensors when it returns (the core frees
   * them if it throws). A throw aborts the resume: the core then puts the variables, the
   * optimizer and every plugin back as they were, restoring a plugin by `loadState` of
   * what its `saveState` returned before.
   */
  loadState?(state: PluginState): void | undefined;
  /** Free what the plugin holds (queues, kept tensors); called by `trainer.dispose()`, synchronously. */
  dispose?(): void | undefined;
}

export type PluginClass = new () => TapfitPlugin;

/** One entry of `TapfitPlugin.conflicts`: another plugin's name, with the reason they cannot compose. */
export type PluginConflict = string | { readonly plugin: string; readonly reason: string };

/** Read-only facts about the trainer a plugin is applied to. */
export interface TrainerView {
  /** The current model (after any `setup` surgery). */
  readonly model: TrainableModel;
  /** The backend name, once `selectBackend` has run or tfjs has one. */
  readonly backend: string;
  /** Names of all registered plugins. */
  readonly plugins: readonly string[];
  /** Number of updates applied so far. */
  readonly step: number;
  /**
   * The trainer's seed (0 by default): data shuffling and dropout masks (core README,
   * "Randomness and reproducibility"); plugins may derive their own seeds from it. tfjs's
   * normal and truncated-normal draws read a seed of 0 as none, so derive nonzero ones
   * (e.g. seed + 1), or use `noiseSeed` for noise inside a forward.
   */
  readonly seed: number;
  /**
   * The update chain's state by member name (`optimizerState.momentum.velocity`), after
   * setup; undefined for a black-box optimizer. Read it, never change or keep it: the
   * trainer replaces it at every update (weight prediction reads the velocity).
   */
  readonly optimizerState?: Readonly<Record<string, TransformState>>;
  /**
   * Ends the running fit, as `trainer.stop()` and a callback's `model.stopTraining = true`
   * do: the current step finishes, and fit returns after it (called in an `epochEnd` tap:
   * after this epoch, whose logs are in the history), running `fitEnd` as usual. Early
   * stopping and "stop at min_lr" plugins call it. No effect outside fit (a `trainStep` loop
   * decides itself when to end); the next fit starts afresh.
   */
  stop(): void;
}

/** Register or decorate services of this trainer only (its own child container). */
export interface ServiceRegistry {
  /** Register a new service, or replace a registered one this plugin declares in `provides`. */
  register<T>(token: InjectionToken<T>, value: T): void;
  /** Wrap the current service: `decorate(Tokens.Logger, prev => ({...prev, info: m => prev.info('[x] ' + m)}))`. */
  decorate<T>(token: InjectionToken<T>, wrap: (previous: T) => T): void;
  resolve<T>(token: InjectionToken<T>): T;
  /** The underlying tsyringe child container, for class registrations. */
  readonly container: DependencyContainer;
}

/** What `plugin.apply` receives. */
export interface PluginApi {
  readonly hooks: TapOnlyHooks;
  readonly services: ServiceRegistry;
  readonly trainer: TrainerView;
  readonly logger: Logger;
}
