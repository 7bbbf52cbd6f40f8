import type * as tf from '@tensorflow/tfjs';
import { type LoraOptions, resolveOptions } from '../common/config';
import { type DryRunOptions, type LoraPlan, reportPlan, resolveDryRun } from '../common/lora-plan';
import { checkOptionKeys, DRY_RUN_KEYS, LORA_KEYS } from '../common/option-keys';
import { injectLora } from './inject';
import { planLora } from './layer-plan';
import { LoraModel } from './lora-model';

/**
 * Wrap the targeted layers of a tfjs-layers model with LoRA. Returns a handle on a new
 * model (TF.js layers cannot be swapped in place) whose targeted layers hold a copy of
 * the base weights, frozen, plus a trainable adapter (A B = 0, so its outputs start equal
 * to the base model's). Every other layer is frozen, except `modulesToSave`. The input
 * model is not modified.
 *
 * Nothing is logged: the plan is on the handle (`plan`, `describe()`). With
 * `dryRun: true` nothing is built: the plan is logged through `logger` (default: the
 * console) and returned, unmatched selectors included.
 */
export function applyLora(model: tf.LayersModel, opts: LoraOptions & DryRunOptions & { dryRun: true }): LoraPlan;
export function applyLora(model: tf.LayersModel, opts: LoraOptions & DryRunOptions & { dryRun?: false | undefined }): LoraModel;
/** `dryRun` known only at run time (a CLI flag): the plan or the model, as it says. */
export function applyLora(model: tf.LayersModel, opts: LoraOptions & DryRunOptions): LoraModel | LoraPlan;
export function applyLora(model: tf.LayersModel, opts: LoraOptions & DryRunOptions): LoraModel | LoraPlan {
  checkOptionKeys('applyLora', opts, [...LORA_KEYS, ...DRY_RUN_KEYS], { verbose: "an option of the lora() plugin; applyLora logs with dryRun: true" });
  const { dryRun, logger } = resolveDryRun(opts);
  if (dryRun) return reportPlan(planLora(model, opts, resolveOptions(opts).spec), logger);
  const { model: rebuilt, plan } = injectLora(model, opts);
  return new LoraModel(rebuilt, plan);
}
