import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, optionSchemas, parseOptions, TapfitError } from '@tapfit/core';
import { z } from 'zod';

export interface DiceLossOptions {
  /** Number of classes (background included): the logits' last axis. */
  classes: number;
  /** Added to numerator and denominator of each class's Dice. Default 1. */
  smooth?: number | undefined;
  /** Weight of the Dice term, >= 0. Default 1. */
  diceWeight?: number | undefined;
  /** Weight of the cross-entropy term, >= 0. Default 1. */
  crossEntropyWeight?: number | undefined;
}

// Strict: a misspelt weight (`diceWieght: 0`) would otherwise train with the default.
const weight = (term: string) => optionSchemas.finite.min(0, `must be a number >= 0 (the weight of the ${term} term; 0 leaves it out)`).optional();
const optionsSchema = z.strictObject(
  {
    classes: optionSchemas.count("an integer >= 2: the logits' class count, background included").min(2, "must be an integer >= 2: the logits' class count, background included"),
    smooth: optionSchemas.finite.min(0, "must be a number >= 0 (added to each class's Dice numerator and denominator; default 1)").optional(),
    diceWeight: weight('Dice'),
    crossEntropyWeight: weight('cross-entropy'),
  } satisfies Record<keyof DiceLossOptions, z.ZodType>,
  { error: 'options must be an object, e.g. diceCrossEntropy({ classes: 4 })' },
);

/** One-hot float targets from class indices [N, ...] or one-hot [N, ..., K]. */
function targetsOf(yTrue: tf.Tensor, logits: tf.Tensor, classes: number): tf.Tensor {
  if (yTrue.rank === logits.rank) return tf.cast(yTrue, 'float32');
  if (yTrue.rank === logits.rank - 1) return tf.cast(tf.oneHot(tf.cast(tf.reshape(yTrue, [-1]), 'int32'), classes), 'float32').reshape(logits.shape);
  throw new TapfitError(ErrorCodes.SHAPE, `diceCrossEntropy: labels [${yTrue.shape}] fit neither logits [${logits.shape}] (one-hot) nor their shape without the class axis (class indices).`);
}

/**
 * Soft Dice + cross-entropy for segmentation (docs/techniques.md §3.2's head): with
 * p = softmax(logits) and one-hot targets t, per class c over the batch and every voxel,
 * Dice_c = (2 sum p_c t_c + s) / (sum p_c + sum t_c + s); loss = w_ce * mean voxel
 * cross-entropy + w_dice * (1 - mean_c Dice_c). Labels: class indices [N, D, H, W] or one-hot.
 */
export function diceCrossEntropy(options: DiceLossOptions): (yTrue: tf.Tensor, logits: tf.Tensor) => tf.Scalar {
  const o = parseOptions('diceCrossEntropy', optionsSchema, options);
  const { classes } = o;
  const smooth = o.smooth ?? 1;
  const wDice = o.diceWeight ?? 1;
  const wCe = o.crossEntropyWeight ?? 1;
  if (wDice === 0 && wCe === 0) throw new TapfitError(ErrorCodes.CONFIG, "diceCrossEntropy: options 'diceWeight' and 'crossEntropyWeight' are both 0, so the loss is a constant 0 and nothing trains; give one of them a weight > 0.");
  return (yTrue, logits) =>
    tf.tidy(() => {
      if (logits.shape[logits.rank - 1] !== classes) throw new TapfitError(ErrorCodes.SHAPE, `diceCrossEntropy: logits [${logits.shape}] do not end in ${classes} classes; build the loss with the model's class count.`);
      const t = targetsOf(yTrue, logits, classes);
      const flatLogits = tf.reshape(logits, [-1, classes]);
      const flatT = tf.reshape(t, [-1, classes]);
      const ce = tf.mean(tf.neg(tf.sum(tf.mul(flatT, tf.logSoftmax(flatLogits)), 1)));
      const p = tf.softmax(flatLogits);
      const inter = tf.sum(tf.mul(p, flatT), 0);
      const denom = tf.add(tf.sum(p, 0), tf.sum(flatT, 0));
      const dice = tf.div(tf.add(tf.mul(inter, 2), smooth), tf.add(denom, smooth));
      return tf.add(tf.mul(ce, wCe), tf.mul(tf.sub(1, tf.mean(dice)), wDice)) as tf.Scalar;
    });
}

/** Hard Dice per class of the argmax prediction (1 for a class absent from both), for evaluation. */
export function diceScores(yTrue: tf.Tensor, logits: tf.Tensor, classes: number): number[] {
  return tf.tidy(() => {
    const t = tf.reshape(targetsOf(yTrue, logits, classes), [-1, classes]);
    const p = tf.oneHot(tf.argMax(tf.reshape(logits, [-1, classes]), 1), classes).toFloat();
    const inter = tf.sum(tf.mul(p, t), 0).dataSync();
    const sizes = tf.add(tf.sum(p, 0), tf.sum(t, 0)).dataSync();
    return Array.from(inter, (i, c) => (sizes[c] === 0 ? 1 : (2 * i) / sizes[c]));
  });
}
