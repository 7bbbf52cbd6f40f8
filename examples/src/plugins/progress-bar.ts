import type { PluginApi, TapfitPlugin } from '@tapfit/core';
import { Stage } from '@tapfit/core';
import { SingleBar, Presets } from 'cli-progress';

/**
 * One progress bar per epoch (cli-progress). Reads the batch loss back only every
 * `lossEvery` steps, so the bar does not force a device sync on each batch.
 */
export function progressBar(options: { lossEvery?: number; stream?: NodeJS.WritableStream } = {}): TapfitPlugin {
  const lossEvery = options.lossEvery ?? 20;
  let bar: SingleBar | undefined;
  let total = 0;
  return {
    name: 'progress-bar',
    core: '^0.1.0',
    apply({ hooks }: PluginApi) {
      hooks.fitStart.tap({ stage: Stage.REPORT }, (info) => void (total = info.stepsPerEpoch));
      const start = (epoch: number, done: number) => {
        bar = new SingleBar(
          { format: `epoch ${epoch + 1} [{bar}] {value}/{total} batches | loss {loss} | {duration_formatted}`, stream: options.stream ?? process.stdout, hideCursor: true },
          Presets.shades_classic,
        );
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
    },
  };
}
