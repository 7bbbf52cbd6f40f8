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
