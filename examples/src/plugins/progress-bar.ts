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
}

/**
 * Progress per epoch. On a terminal, a cli-progress bar that reads the batch loss back
 * only every `lossEvery` steps. Elsewhere (CI logs, a pipe) a bar prints nothing until
 * the epoch ends, so instead a plain line every `everyMs`:
 * `epoch 2/6: 120/250 batches, loss 0.4321, 12.3 s`.
 */
export function progressBar(options: ProgressOptions = {}): TapfitPlugin {
  const stream = options.stream ?? process.stdout;
  const terminal = (stream as { isTTY?: boolean }).isTTY === true;
  return {
    name: 'progress-bar',
    core: '^0.1.0',
    apply: (api: PluginApi) => (terminal ? tapBar(api, stream, options.lossEvery ?? 20) : tapLines(api, stream, options.everyMs ?? 5000, options.now ?? (() => performance.now()))),
  };
}

function tapBar({ hooks }: PluginApi, stream: NodeJS.WritableStream, lossEvery: number): void {
  let bar: SingleBar | undefined;
  let total = 0;
  hooks.fitStart.tap({ stage: Stage.REPORT }, (info) => void (total = info.stepsPerEpoch));
  const start = (epoch: number, done: number) => {
    bar = new SingleBar({ format: `epoch ${epoch + 1} [{bar}] {value}/{total} batches | loss {loss} | {duration_formatted}`, stream, hideCursor: true }, Presets.shades_classic);
    bar.start(total, done, { loss: '-' });
  };
  hooks.epochStart.tap({ stage: Stage.REPORT }, ({ epoch }) => start(epoch, 0));
  hooks.batchEnd.tap({ stage: Stage.REPORT }, (info) => {
    if (!bar) start(info.epoch, info.batch); // resumed mid-epoch: no epochStart
    const payload = info.batch % lossEvery === 0 ? { loss: info.loss().toFixed(4) } : undefined;
    bar?.increment(1, payload);
  });
  hooks.epochEnd.tap({ stage: Stage.REPORT }, () => {
    bar?.stop();
    bar = undefined;
  });
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
