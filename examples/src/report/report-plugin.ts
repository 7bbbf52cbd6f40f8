import * as tf from '@tensorflow/tfjs';
import { Stage, watchPeakBytes, type PeakBytesWatch, type PluginApi, type Schedule, type TapfitPlugin } from '@tapfit/core';

/** One training step as the report shows it. */
export interface StepRecord {
  /** The step's place in the whole run, from 0 (a resumed run goes on from the step it resumed at). */
  step: number;
  epoch: number;
  batch: number;
  loss: number;
  /** The learning rate the update used (undefined without a learning-rate member in the chain). */
  lr?: number;
  /** Wall time from batch start to the loss read back (the step and its device work). */
  ms: number;
  /** Peak live tensor bytes during the step (TF.js's accounting). */
  peakBytes: number;
  /** Live tensor bytes after the step (what the next step starts from; growth here is a leak). */
  liveBytes: number;
  /** No update was applied (a delay warm-up, a skipped non-finite step). */
  skipped: boolean;
}

/** One epoch's logs: loss, metrics and their val_ forms. */
export type EpochRecord = { epoch: number } & Record<string, number>;

export interface ReportPlugin extends TapfitPlugin {
  readonly steps: readonly StepRecord[];
  readonly epochs: readonly EpochRecord[];
  dispose(): void;
}

/**
 * Records what the training report charts, step by step: the loss (read back every step:
 * a report costs one device sync per step), the learning rate, the step time and the peak
 * live tensor bytes (watched at every kernel while fitting). Observes only: its
 * `stepTransforms` tap hands the chain on unchanged.
 */
export function trainingReport(): ReportPlugin {
  const steps: StepRecord[] = [];
  const epochs: EpochRecord[] = [];
  let watch: PeakBytesWatch | undefined;
  let lrMember: { name: string; lr: number | Schedule } | undefined;
  let started = 0;
  let stepsPerEpoch = -1;
  /** Data of unknown length: number on from the trainer's step at the first fit. */
  let firstStep: number | undefined;
  const stop = () => {
    watch?.stop();
    watch = undefined;
  };
  return {
    name: 'training-report',
    core: '^0.1.0',
    steps,
    epochs,
    apply({ hooks, trainer }: PluginApi) {
      hooks.stepTransforms.tap({ stage: Stage.LAST }, (members) => {
        const m = members.find((t) => t.hyperparams?.lr !== undefined);
        lrMember = m && { name: m.name, lr: m.hyperparams!.lr as number | Schedule };
        return members;
      });
      hooks.fitStart.tap({ stage: Stage.REPORT }, (info) => {
        watch ??= watchPeakBytes();
        stepsPerEpoch = info.stepsPerEpoch;
        firstStep ??= trainer.step;
      });
      hooks.batchStart.tap({ stage: Stage.REPORT }, () => {
        watch?.take();
        started = performance.now();
      });
      hooks.batchEnd.tap({ stage: Stage.REPORT }, (info) => {
        const loss = info.loss();
        const ms = performance.now() - started;
        // The member counts its updates: the one just applied used the rate at count - 1.
        const count = (trainer.optimizerState?.[lrMember?.name ?? ''] as { count?: number } | undefined)?.count;
        const lr = lrMember === undefined ? undefined : typeof lrMember.lr === 'number' ? lrMember.lr : count ? lrMember.lr(count - 1) : lrMember.lr(0);
        // The batch's place in the run, as a straight run numbers it: a resumed run's charts start at its step.
        const step = stepsPerEpoch > 0 ? info.epoch * stepsPerEpoch + info.batch : firstStep! + steps.length;
        steps.push({ step, epoch: info.epoch, batch: info.batch, loss, lr, ms, peakBytes: watch?.take() ?? 0, liveBytes: tf.memory().numBytes, skipped: info.skipped });
      });
      hooks.epochEnd.tap({ stage: Stage.REPORT }, ({ epoch, logs }) => void epochs.push({ ...logs, epoch }));
      hooks.fitEnd.tap({ stage: Stage.REPORT }, stop);
    },
    dispose: stop,
  };
}
