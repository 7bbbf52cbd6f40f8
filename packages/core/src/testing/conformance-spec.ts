import type * as tf from '@tensorflow/tfjs';
import type { DataSource } from '../data/data-source';
import type { TapfitPlugin } from '../plugin/types';
import type { TrainerOptions } from '../train/trainer';

/** What the conformance suite needs to build trainers with a plugin. */
export interface ConformanceSpec {
  /** A fresh plugin instance on every call. */
  plugin: () => TapfitPlugin;
  /**
   * Trainer options the plugin needs, fresh on every call (a new, identically
   * initialised model each time); called once per trainer the kit builds, and the
   * plugin under test is added to the plugins they list (so its `requires` may be met
   * here). The kit owns what they hold: after each trainer it disposes their model
   * and a `tf.train` optimizer. Default: the kit's tiny MLP with SGD + momentum.
   */
  trainer?: (() => Partial<TrainerOptions>) | undefined;
  /** Training data, fresh on every call. Default: 64 blob samples (4 features, 3 classes). */
  data?: (() => DataSource & { dispose?(): void }) | undefined;
  /** A probe batch to compare models on. Default: 8 ones-and-ramps rows shaped like the data. */
  probe?: (() => tf.Tensor) | undefined;
  batchSize?: number | undefined;
  epochs?: number | undefined;
  /**
   * Options that do what the plugin does without the plugin (its functional twin, e.g. a
   * model already transformed by `applyX(model)`, or an optimizer chain with the
   * plugin's transform). Training with them must give the same predictions.
   */
  twin?: (() => Partial<TrainerOptions>) | undefined;
  /** Max |difference| allowed between twin and hook form (0 = bitwise). Default 1e-6. */
  twinTolerance?: number | undefined;
}

export interface ConformanceCheck {
  name: string;
  run(): Promise<void>;
}
