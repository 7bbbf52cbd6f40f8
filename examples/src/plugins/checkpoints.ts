import type { PluginApi, TapfitPlugin } from '@tapfit/core';
import { Stage } from '@tapfit/core';

/**
 * Saves a checkpoint under `dir` every `every` steps (when set), at the end of each
 * epoch, and where a stopped fit stopped. `save` is the trainer's `save(dir)`: the plugin API gives plugins a read-only
 * view of the trainer, so the caller hands the method in.
 */
export function checkpoints(options: { dir: string; every?: number }, save: (dir: string) => Promise<unknown>): TapfitPlugin {
  let stepsPerEpoch = -1;
  let lastSaved = -1;
  return {
    name: 'checkpoints',
    core: '^0.1.0',
    apply({ hooks, trainer }: PluginApi) {
      const saveNow = async () => {
        if (trainer.step === lastSaved) return; // a skipped update leaves the step unchanged
        await save(options.dir);
        lastSaved = trainer.step;
      };
      let fitFrom = -1;
      hooks.fitStart.tap({ stage: Stage.LAST }, (info) => {
        stepsPerEpoch = info.stepsPerEpoch;
        fitFrom = trainer.step;
      });
      if (options.every) {
        const every = options.every;
        hooks.batchEnd.tap({ stage: Stage.LAST }, async ({ batch }) => {
          // The epoch's last batch is saved at epoch end (after validation) instead.
          if (trainer.step % every === 0 && batch + 1 !== stepsPerEpoch) await saveNow();
        });
      }
      hooks.epochEnd.tap({ stage: Stage.LAST }, saveNow);
      // A fit that stop() ended mid-epoch (Ctrl-C in the CLI) is saved where it stopped; after a full fit this step is saved already.
      hooks.fitEnd.tap({ stage: Stage.LAST }, async () => {
        if (trainer.step !== fitFrom) await saveNow(); // a fit that trained nothing (a finished run resumed) saves nothing
      });
    },
  };
}
