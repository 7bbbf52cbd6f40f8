import type { FitParams } from './callbacks';

/** What fit returns: tf.History's shape (`epoch`, `history`, `params`) with numbers. */
export interface History {
  /** The epochs that ran, in order (0-based; from initialEpoch or the trainer's position). */
  epoch: number[];
  /** Per log key, one value per epoch: 'loss', the metrics ('acc', 'mse', ...) and their 'val_' forms. */
  history: Record<string, number[]>;
  params: FitParams;
}
