import { MAX_POINTS_PER_SERIES } from './min-max-buckets';
import { MinMaxStream } from './min-max-stream';
import type { StepRecord } from './step-record';

const MIB = 2 ** 20;

/** The per-step series the report charts, each in the unit it is drawn in. */
const SERIES = {
  loss: (s: StepRecord) => s.loss,
  lr: (s: StepRecord) => s.lr,
  ms: (s: StepRecord) => s.ms,
  peakMiB: (s: StepRecord) => s.peakBytes / MIB,
  liveMiB: (s: StepRecord) => s.liveBytes / MIB,
} as const;

export type StepSeriesName = keyof typeof SERIES;

/**
 * What the report page shows of the steps, kept as they come and bounded however long the
 * run: the counts of its summary table and, per charted series, a MinMaxStream (at most
 * `maxPoints` points a series). The records themselves are not kept here (the report
 * plugin appends them to a file for report.json).
 */
export class StepSummary {
  /** Steps seen. */
  count = 0;
  /** Steps that applied no update (a delay warm-up, a skipped non-finite step). */
  withoutUpdate = 0;
  /** The first and last step numbers seen (undefined before the first step). */
  firstStep: number | undefined;
  lastStep: number | undefined;
  /** Whether any step had a learning rate (a chain with a learning-rate member). */
  hasLr = false;
  readonly series: Record<StepSeriesName, MinMaxStream>;

  constructor(readonly maxPoints = MAX_POINTS_PER_SERIES) {
    this.series = Object.fromEntries(Object.keys(SERIES).map((k) => [k, new MinMaxStream(maxPoints)])) as Record<StepSeriesName, MinMaxStream>;
  }

  /** The summary of `steps` (in step order): what a report of those steps draws. */
  static of(steps: Iterable<StepRecord>, maxPoints = MAX_POINTS_PER_SERIES): StepSummary {
    const summary = new StepSummary(maxPoints);
    for (const s of steps) summary.add(s);
    return summary;
  }

  add(s: StepRecord): void {
    this.count++;
    if (s.skipped) this.withoutUpdate++;
    this.firstStep ??= s.step;
    this.lastStep = s.step;
    if (s.lr !== undefined) this.hasLr = true;
    for (const [name, value] of Object.entries(SERIES)) this.series[name as StepSeriesName].push(s.step, value(s));
  }

  /** Buckets held across the series: at most 5 × bucketCount(maxPoints), whatever the count. */
  get heldBuckets(): number {
    return Object.values(this.series).reduce((n, s) => n + s.heldBuckets, 0);
  }
}
