import { AsyncSeriesHook, SyncHook, SyncWaterfallHook } from 'tapable';
import { ErrorCodes, pluginCallFailure, TapfitError } from '../errors';
import { asList, OrderedTap, resolveOrder, TapOptions } from './order';

export interface RecordedTap<F> extends OrderedTap {
  readonly plugin: string;
  readonly fn: F;
}

/** Wraps a plugin's error so it names the plugin and the hook (kept as `cause`). */
export function pluginFailure(plugin: string, hook: string, err: unknown): TapfitError {
  if (err instanceof TapfitError && err.code === ErrorCodes.PLUGIN_FAILED) return err;
  return pluginCallFailure(plugin, `hook '${hook}'`, err);
}

/**
 * One hook point: records taps while plugins are applied, then `seal` orders them
 * (stages + before/after) and compiles a tapable hook that runs them in that order.
 */
export abstract class HookPoint<F extends (...args: never[]) => unknown> {
  protected taps: RecordedTap<F>[] = [];
  private sealed = false;

  constructor(
    readonly name: string,
    readonly description: string,
  ) {}

  /** Record a tap. `plugin` is who registered it (used in errors and describe()). */
  tap(plugin: string, options: string | TapOptions, fn: F): void {
    if (this.sealed) {
      throw new TapfitError(
        ErrorCodes.HOOKS_SEALED,
        `plugin '${plugin}' tapped hook '${this.name}' after the trainer was set up. Tap hooks inside plugin.apply().`,
      );
    }
    const o: TapOptions = typeof options === 'string' ? { name: options } : options;
    this.taps.push({
      plugin,
      fn,
      name: o.name ?? plugin,
      stage: o.stage ?? 0,
      before: asList(o.before),
      after: asList(o.after),
      index: this.taps.length,
    });
  }

  /** Resolve the order and compile. Throws on unknown names and cycles. */
  seal(known: ReadonlySet<string>): void {
    this.taps = resolveOrder(this.name, this.taps, known);
    this.sealed = true;
    this.compile(this.taps);
  }

  /** The names taps were registered under (what `before`/`after` may name, with plugin names). */
  tapNames(): string[] {
    return this.taps.map((t) => t.name);
  }

  /** Names of the taps, in the order they run. */
  order(): string[] {
    return this.taps.map((t) => (t.name === t.plugin ? t.name : `${t.plugin}:${t.name}`));
  }

  get isUsed(): boolean {
    return this.taps.length > 0;
  }

  protected abstract compile(taps: readonly RecordedTap<F>[]): void;
}

/** Synchronous waterfall: each tap receives the previous tap's value and returns the next. */
export class WaterfallHook<V, I> extends HookPoint<(value: V, info: I) => V> {
  private hook?: SyncWaterfallHook<[V, I], V>;
  private check?: (value: V, plugin: string, given: V) => void;

  /**
   * Validate what every tap returns (the trainer checks gradients' shapes, forward
   * passes' segments), so a bad value is refused naming the plugin that returned it.
   * `given` is what the tap received (the trainer follows which plugin replaced a chain member).
   */
  checkEachTap(check: (value: V, plugin: string, given: V) => void): void {
    this.check = check;
  }

  protected compile(taps: readonly RecordedTap<(value: V, info: I) => V>[]): void {
    const hook = new SyncWaterfallHook<[V, I], V>(['value', 'info']);
    const name = this.name;
    for (const { fn, plugin, name: tapName } of taps) {
      hook.tap(tapName, (value: V, info: I) => {
        let out: V;
        // What the tap was given, as given: a tap may edit an array in place and return it.
        const given = this.check && Array.isArray(value) ? ([...value] as V) : value;
        try {
          out = fn(value, info);
        } catch (err) {
          throw pluginFailure(plugin, name, err);
        }
        this.check?.(out, plugin, given);
        return out;
      });
    }
    this.hook = taps.length ? hook : undefined;
  }

  /** Run the taps; with none, returns `value` unchanged at no cost. */
  call(value: V, info: I): V {
    return this.hook ? this.hook.call(value, info) : value;
  }
}

/** Asynchronous series: taps run one after another, awaited (boundaries only). */
export class SeriesHook<I> extends HookPoint<(info: I) => void | Promise<void>> {
  private hook?: AsyncSeriesHook<[I]>;
  private current?: string;

  /** The plugin whose tap is running (the taps run one at a time), for messages about what it did. */
  get runningPlugin(): string | undefined {
    return this.current;
  }

  protected compile(taps: readonly RecordedTap<(info: I) => void | Promise<void>>[]): void {
    const hook = new AsyncSeriesHook<[I]>(['info']);
    const name = this.name;
    for (const { fn, plugin, name: tapName } of taps) {
      hook.tapPromise(tapName, async (info: I) => {
        this.current = plugin;
        try {
          await fn(info);
        } catch (err) {
          throw pluginFailure(plugin, name, err);
        } finally {
          this.current = undefined;
        }
      });
    }
    this.hook = taps.length ? hook : undefined;
  }

  /** Run the taps in order; resolves at once when there are none. */
  async run(info: I): Promise<void> {
    if (this.hook) await this.hook.promise(info);
  }
}

/**
 * Synchronous series: taps run one after another and must finish synchronously (for hooks
 * that also run inside synchronous calls, such as `evaluate(x, y)`). A tap that returns a
 * promise is refused, naming the plugin: nothing would wait for it.
 */
export class SyncSeriesHook<I> extends HookPoint<(info: I) => void> {
  private hook?: SyncHook<[I]>;

  protected compile(taps: readonly RecordedTap<(info: I) => void>[]): void {
    const hook = new SyncHook<[I]>(['info']);
    const name = this.name;
    for (const { fn, plugin, name: tapName } of taps) {
      hook.tap(tapName, (info: I) => {
        let out: unknown;
        try {
          out = fn(info);
        } catch (err) {
          throw pluginFailure(plugin, name, err);
        }
        if (typeof (out as { then?: unknown } | undefined)?.then === 'function') {
          (out as Promise<unknown>).then(undefined, () => undefined); // refused below; its rejection is not left unhandled
          throw new TapfitError(
            ErrorCodes.PLUGIN_FAILED,
            `plugin '${plugin}' returned a promise from hook '${name}', which is synchronous (it also runs inside the synchronous evaluate(x, y)) and waits for nothing. Do the work synchronously (variable.assign swaps weights).`,
          );
        }
      });
    }
    this.hook = taps.length ? hook : undefined;
  }

  /** Run the taps in order; returns at once when there are none. */
  call(info: I): void {
    this.hook?.call(info);
  }
}
