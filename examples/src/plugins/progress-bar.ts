import type { PluginApi, TapfitPlugin } from '@tapfit/core';
import { Stage } from '@tapfit/core';
import { SingleBar, Presets } from 'cli-progress';

export interface ProgressOptions {
  /** Terminal: read the batch loss back every this many steps (default 20), so the bar does not sync the device on each batch. */
  lossEvery?: number;
  /** Default process.stdout. */
  stream?: NodeJS.WritableStream;
  /** Not a terminal: print a plain progress line at most this often (default 5000 ms). */
  everyMs?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
  /**
   * Terminal: cli-progress's own `gracefulExit`, which stops the bar (cursor shown, line
   * wrap on) at SIGINT/SIGTERM. Its handler does not end the process, so set it only when
   * the caller handles those signals itself (the CLI does); default false.
   */
  gracefulExit?: boolean;
}

export interface ProgressPlugin extends TapfitPlugin {
  /**
   * Ends the bar for good: the terminal is restored (cursor shown, line wrap back on) and
   * its line ended, so what is printed next starts on a fresh line; no bar is drawn after
   * it. Call it when the run ends, also when it fails or is interrupted. Idempotent.
   */
  stop(): void;
}

/**
 * Progress per epoch. On a terminal, a cli-progress bar that reads the batch loss back
 * only every `lossEvery` steps. Elsewhere (CI logs, a pipe) a bar prints nothing until
 * the epoch ends, so instead a plain line every `everyMs`:
 * `epoch 2/6: 120/250 batches, loss 0.4321, 12.3 s`.
 */
export function progressBar(options: ProgressOptions = {}): ProgressPlugin {
  const stream = options.stream ?? process.stdout;
  const terminal = (stream as { isTTY?: boolean }).isTTY === true;
  // Plain lines end with their newline: only the terminal bar has anything to stop.
  const bar = terminal ? new TerminalBar(stream, options.gracefulExit ?? false) : undefined;
  return {
    name: 'progress-bar',
    core: '^0.1.0',
    apply: (api: PluginApi) => (bar ? bar.tap(api, options.lossEvery ?? 20) : tapLines(api, stream, options.everyMs ?? 5000, options.now ?? (() => performance.now()))),
    stop: () => bar?.stop(),
  };
}

/** One cli-progress bar per epoch, until stop(). */
class TerminalBar {
  private bar: SingleBar | undefined;
  private total = 0;
  private stopped = false;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly gracefulExit: boolean,
  ) {}

  tap({ hooks }: PluginApi, lossEvery: number): void {
    hooks.fitStart.tap({ stage: Stage.REPORT }, (info) => void (this.total = info.stepsPerEpoch));
    hooks.epochStart.tap({ stage: Stage.REPORT }, ({ epoch }) => this.start(epoch, 0));
    hooks.batchEnd.tap({ stage: Stage.REPORT }, (info) => {
      if (!this.bar) this.start(info.epoch, info.batch); // resumed mid-epoch: no epochStart
      const payload = info.batch % lossEvery === 0 ? { loss: info.loss().toFixed(4) } : undefined;
      this.bar?.increment(1, payload);
    });
    hooks.epochEnd.tap({ stage: Stage.REPORT }, () => this.end());
  }

  stop(): void {
    this.stopped = true;
    this.end();
  }

  private start(epoch: number, done: number): void {
    if (this.stopped) return; // the batch that finishes after an interrupt draws no new bar
    const format = `epoch ${epoch + 1} [{bar}] {value}/{total} batches | loss {loss} | {duration_formatted}`;
    this.bar = new SingleBar({ format, stream: this.stream, hideCursor: true, gracefulExit: this.gracefulExit }, Presets.shades_classic);
    this.bar.start(this.total, done, { loss: '-' });
  }

  /** cli-progress's stop(): shows the cursor, turns line wrap back on, ends the line. */
  private end(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

function tapLines({ hooks }: PluginApi, stream: NodeJS.WritableStream, everyMs: number, now: () => number): void {
  let total = 0;
  let epochs = 0;
  let started = now();
  let last = started;
  hooks.fitStart.tap({ stage: Stage.REPORT }, (info) => {
    total = info.stepsPerEpoch;
    epochs = info.epochs;
    started = last = now();
  });
  hooks.epochStart.tap({ stage: Stage.REPORT }, () => void (started = last = now()));
  hooks.batchEnd.tap({ stage: Stage.REPORT }, (info) => {
    const t = now();
    if (t - last < everyMs) return;
    last = t;
    const of = total > 0 ? `/${total}` : '';
    stream.write(`epoch ${info.epoch + 1}/${epochs}: ${info.batch + 1}${of} batches, loss ${info.loss().toFixed(4)}, ${((t - started) / 1000).toFixed(1)} s\n`);
  });
}
