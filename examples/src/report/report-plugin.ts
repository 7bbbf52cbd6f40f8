import * as tf from '@tensorflow/tfjs';
import { Stage, watchPeakBytes, type PeakBytesWatch, type PluginApi, type Schedule, type TapfitPlugin } from '@tapfit/core';
import type { StepRecord } from './step-record';
import { removeDeadSpools, StepSpool } from './step-spool';
import { StepSummary } from './step-summary';

export type { StepRecord };

/** One epoch's logs: loss, metrics and their val_ forms. */
export type EpochRecord = { epoch: number } & Record<string, number>;

export interface ReportPlugin extends TapfitPlugin {
  /** What the page draws of the steps, bounded however long the run (see StepSummary). */
  readonly summary: StepSummary;
  readonly epochs: readonly EpochRecord[];
  /** Every step record so far, in order, read back from the report folder (for report.json). */
  records(): Iterable<StepRecord>;
  /** Stops the memory watch and removes the step records' file (report.json holds them once written). */
  dispose(): void;
}

export interface ReportOptions {
  /** The report folder: the step records are appended to a temporary file there while training. */
  dir: string;
  /** At most this many points a chart series (see MinMaxStream); the default suits a page. */
  maxPoints?: number;
}

/**
 * Records what the training report charts, step by step: the loss (read back every step:
 * a report costs one device sync per step), the learning rate, the step time and the peak
 * live tensor bytes (watched at every kernel while fitting). Observes only: its
 * `stepTransforms` tap hands the chain on unchanged. Its memory does not grow with the
 * steps: each step record goes to a file in the report folder (StepSpool), and the charts
 * keep a bounded min/max summary (StepSummary); only the epochs' logs are kept whole.
 */
export function trainingReport(options: ReportOptions): ReportPlugin {
  const summary = new StepSummary(options.maxPoints);
  const spool = new StepSpool(options.dir);
  const epochs: EpochRecord[] = [];
  let watch: PeakBytesWatch | undefined;
  let lrMember: { name: string; lr: number | Schedule } | undefined;
  let started = 0;
  let stepsPerEpoch = -1;
  /** Data of unknown length: number on from the trainer's step at the first fit. */
  let firstStep: number | undefined;
  let swept = false;
  const stop = () => {
    watch?.stop();
    watch = undefined;
  };
  return {
    name: 'training-report',
    core: '^0.1.0',
    summary,
    epochs,
    records: () => spool.records(),
    apply({ hooks, trainer }: PluginApi) {
      hooks.stepTransforms.tap({ stage: Stage.LAST }, (members) => {
        const m = members.find((t) => t.hyperparams?.lr !== undefined);
        lrMember = m && { name: m.name, lr: m.hyperparams!.lr as number | Schedule };
        return members;
      });
      hooks.fitStart.tap({ stage: Stage.REPORT }, (info) => {
        if (!swept) removeDeadSpools(options.dir); // step records that killed runs left in the folder
        swept = true;
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
        const step = stepsPerEpoch > 0 ? info.epoch * stepsPerEpoch + info.batch : firstStep! + summary.count;
        const record: StepRecord = { step, epoch: info.epoch, batch: info.batch, loss, lr, ms, peakBytes: watch?.take() ?? 0, liveBytes: tf.memory().numBytes, skipped: info.skipped };
        spool.append(record);
        summary.add(record);
      });
      hooks.epochEnd.tap({ stage: Stage.REPORT }, ({ epoch, logs }) => void epochs.push({ ...logs, epoch }));
      hooks.fitEnd.tap({ stage: Stage.REPORT }, stop);
    },
    dispose() {
      stop();
      spool.discard();
    },
  };
}
