/** Staleness of applied gradients: how many updates landed between a gradient's weights and its own update. */
export interface StalenessStats {
  mean: number;
  max: number;
  /** histogram[s] = gradients applied with staleness s. */
  histogram: number[];
}

export class StalenessRecorder {
  private readonly counts: number[] = [];
  private total = 0;
  private n = 0;

  record(staleness: number): void {
    this.counts[staleness] = (this.counts[staleness] ?? 0) + 1;
    this.total += staleness;
    this.n++;
  }

  stats(): StalenessStats {
    return {
      mean: this.n ? this.total / this.n : 0,
      max: this.counts.length ? this.counts.length - 1 : 0,
      histogram: Array.from(this.counts, (c) => c ?? 0),
    };
  }
}
