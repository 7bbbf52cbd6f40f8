import { z } from 'zod';
import { Stage } from '../hooks/order';
import type { TapfitPlugin } from '../plugin/types';
import { Tokens } from '../services/tokens';
import { parseOptions } from '../options';
import { CORE_VERSION } from '../version';
import { BudgetPlanner } from './budget-planner';
import { profileSegments, type MemoryProfile, type MemorySample } from './profile';

export interface MemoryBudgetOptions {
  /** Bytes one training step may add on top of what is live before it (see BudgetPlanner). */
  budgetBytes: number;
  /** A batch shaped like the training batches, to measure the segments on. */
  sample: MemorySample;
}

const optionsSchema = z
  .object({
    budgetBytes: z.number().positive(),
    sample: z.object({ x: z.custom((t) => !!t && typeof (t as { shape?: unknown }).shape === 'object', 'a tf.Tensor'), y: z.any().optional() }),
  })
  .strict();

/**
 * Plugin form of memory planning: measures the model at the end of setup (after any
 * model surgery) and fits the memory plan to `budgetBytes` after other plugins'
 * `planMemory` taps (their `invert` marks and `extraBytes` are kept). The trainer's
 * default Backprop realises the plan with the segment executor; `trainer.describe()`
 * shows the predicted bytes.
 */
export function memoryBudget(options: MemoryBudgetOptions): TapfitPlugin {
  const o = parseOptions('memoryBudget', optionsSchema, options);
  let profile: MemoryProfile | undefined;
  return {
    name: 'memory-budget',
    core: CORE_VERSION,
    apply({ hooks, services }) {
      hooks.setup.tap({ stage: Stage.LAST }, async ({ model }) => {
        profile = await profileSegments(model, options.sample, services.resolve(Tokens.Loss));
      });
      hooks.planMemory.tap({ stage: Stage.LAST }, (plan) => new BudgetPlanner({ budgetBytes: o.budgetBytes, profile: profile! }).fit(plan));
    },
  };
}
